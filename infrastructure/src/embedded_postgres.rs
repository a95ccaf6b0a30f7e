//! A private PostgreSQL cluster for running without `DATABASE_URL`: created with
//! the installed PostgreSQL's `initdb`, started and stopped with its `pg_ctl`.
//! As root, the cluster runs as the unprivileged `postgres` user (initdb refuses root).

use rand::RngCore;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SUPERUSER: &str = "voxreach";
const DATABASE: &str = "voxreach";

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "PostgreSQL is not installed (no initdb/pg_ctl on PATH or under /usr/lib/postgresql/*/bin). \
         Install it (Debian/Ubuntu: `apt-get install postgresql`) or set DATABASE_URL to an existing database."
    )]
    NotInstalled,
    #[error("running as root needs the unprivileged `postgres` system user to own the cluster; it does not exist (install the postgresql package, or set DATABASE_URL)")]
    NoUnprivilegedUser,
    #[error("{step} failed: {detail}")]
    Step { step: &'static str, detail: String },
}

fn step(step: &'static str) -> impl Fn(std::io::Error) -> EmbeddedError {
    move |e| EmbeddedError::Step {
        step,
        detail: e.to_string(),
    }
}

/// A running private cluster.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    bin_dir: PathBuf,
    cluster_dir: PathBuf,
    owner: Option<nix::unistd::User>,
    port: u16,
    password: String,
}

/// Finds the installed PostgreSQL's binaries: PATH first, then Debian's versioned directories (newest first).
pub fn find_bin_dir() -> Option<PathBuf> {
    let has_tools = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(path) = std::env::var_os("PATH") {
        if let Some(dir) = std::env::split_paths(&path).find(|d| has_tools(d)) {
            return Some(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            has_tools(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, dir)| dir)
}

impl EmbeddedPostgres {
    /// Creates the cluster under `root` if needed, starts it if it is not
    /// running, and makes sure the application database exists.
    pub async fn start(root: &Path) -> Result<Self, EmbeddedError> {
        let root = root.to_owned();
        tokio::task::spawn_blocking(move || Self::start_blocking(&root))
            .await
            .map_err(|e| EmbeddedError::Step {
                step: "starting the embedded database",
                detail: e.to_string(),
            })?
    }

    fn start_blocking(root: &Path) -> Result<Self, EmbeddedError> {
        let bin_dir = find_bin_dir().ok_or(EmbeddedError::NotInstalled)?;
        let owner = if nix::unistd::geteuid().is_root() {
            Some(
                nix::unistd::User::from_name("postgres")
                    .ok()
                    .flatten()
                    .ok_or(EmbeddedError::NoUnprivilegedUser)?,
            )
        } else {
            None
        };
        std::fs::create_dir_all(root).map_err(step("creating the data directory"))?;
        let root = root.canonicalize().map_err(step("resolving the data directory"))?;
        let cluster_dir = root.join("pgdata");
        let password = read_or_create_password(&root.join("pg-password"))?;
        let mut cluster = Self {
            bin_dir,
            cluster_dir,
            owner,
            port: 0,
            password,
        };
        if !cluster.cluster_dir.join("PG_VERSION").exists() {
            cluster.init(&root)?;
        }
        cluster.port = match cluster.running_port() {
            Some(port) => port,
            None => cluster.launch()?,
        };
        Ok(cluster)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// URL of the application database, created on first use by the caller.
    pub fn database_url(&self) -> String {
        self.url_for(DATABASE)
    }

    /// URL of the cluster's maintenance database, for creating others.
    pub fn admin_url(&self) -> String {
        self.url_for("postgres")
    }

    fn url_for(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }

    /// Creates the application database if it does not exist yet.
    pub async fn ensure_database(&self) -> Result<(), EmbeddedError> {
        use sqlx::Connection;
        let failed = |e: sqlx::Error| EmbeddedError::Step {
            step: "creating the application database",
            detail: e.to_string(),
        };
        let mut conn = sqlx::PgConnection::connect(&self.admin_url()).await.map_err(failed)?;
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(DATABASE)
            .fetch_one(&mut conn)
            .await
            .map_err(failed)?;
        if !exists {
            sqlx::query(&format!("CREATE DATABASE {DATABASE}"))
                .execute(&mut conn)
                .await
                .map_err(failed)?;
        }
        Ok(())
    }

    /// Stops the cluster (fast shutdown: running transactions are rolled back, data is kept).
    pub async fn stop(&self) -> Result<(), EmbeddedError> {
        let data = self.cluster_dir.display().to_string();
        let command = self.command("pg_ctl", &["stop", "-D", &data, "-m", "fast", "-w", "-t", "60"]);
        tokio::task::spawn_blocking(move || run(command, "stopping the embedded database"))
            .await
            .map_err(|e| EmbeddedError::Step {
                step: "stopping the embedded database",
                detail: e.to_string(),
            })?
            .map(|_| ())
    }

    fn command(&self, tool: &str, args: &[&str]) -> Command {
        let mut command = Command::new(self.bin_dir.join(tool));
        command.args(args).env_remove("PGDATA").env("LC_ALL", "C");
        if let Some(owner) = &self.owner {
            use std::os::unix::process::CommandExt;
            command
                .uid(owner.uid.as_raw())
                .gid(owner.gid.as_raw())
                .env("HOME", &owner.dir);
        }
        command
    }

    /// Gives the cluster's owner a path it may write to, as root.
    fn hand_over(&self, path: &Path) -> Result<(), EmbeddedError> {
        if let Some(owner) = &self.owner {
            nix::unistd::chown(path, Some(owner.uid), Some(owner.gid)).map_err(|e| EmbeddedError::Step {
                step: "giving the data directory to the postgres user",
                detail: e.to_string(),
            })?;
        }
        Ok(())
    }

    fn init(&self, root: &Path) -> Result<(), EmbeddedError> {
        std::fs::create_dir_all(&self.cluster_dir).map_err(step("creating the cluster directory"))?;
        self.hand_over(&self.cluster_dir)?;
        // initdb reads the superuser password from a file its user can read; removed right after.
        let password_file = root.join(format!("initdb-password-{}", std::process::id()));
        std::fs::write(&password_file, &self.password).map_err(step("writing the initdb password file"))?;
        self.hand_over(&password_file)?;
        let data = self.cluster_dir.display().to_string();
        let pwfile = format!("--pwfile={}", password_file.display());
        let result = run(
            self.command(
                "initdb",
                &[
                    "-D",
                    &data,
                    "-U",
                    SUPERUSER,
                    &pwfile,
                    "--auth=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ],
            ),
            "initdb",
        );
        let _ = std::fs::remove_file(&password_file);
        result.map(|_| ())
    }

    /// The port of a cluster already running from this directory, e.g. after
    /// a crash or while another test process uses it.
    fn running_port(&self) -> Option<u16> {
        let data = self.cluster_dir.display().to_string();
        let status = self.command("pg_ctl", &["status", "-D", &data]).output().ok()?;
        if !status.status.success() {
            return None;
        }
        let pid_file = std::fs::read_to_string(self.cluster_dir.join("postmaster.pid")).ok()?;
        pid_file.lines().nth(3)?.trim().parse().ok()
    }

    fn launch(&self) -> Result<u16, EmbeddedError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(step("choosing a port"))?
            .port();
        let data = self.cluster_dir.display().to_string();
        let log = self.cluster_dir.join("server.log").display().to_string();
        // TCP on loopback only, no Unix socket: its directory may not be writable and paths may be too long.
        let options = format!("-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''");
        run(
            self.command(
                "pg_ctl",
                &["start", "-D", &data, "-l", &log, "-w", "-t", "60", "-o", &options],
            ),
            "starting PostgreSQL",
        )?;
        tracing::info!(port, data_dir = %data, "embedded PostgreSQL started");
        Ok(port)
    }
}

fn run(mut command: Command, what: &'static str) -> Result<Output, EmbeddedError> {
    let output = command.output().map_err(step(what))?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(EmbeddedError::Step {
            step: what,
            detail: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        })
    }
}

fn read_or_create_password(path: &Path) -> Result<String, EmbeddedError> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        return Ok(existing.trim().to_owned());
    }
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let password = hex::encode(bytes);
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(step("writing the database password"))?;
        file.write_all(password.as_bytes())
            .map_err(step("writing the database password"))?;
    }
    Ok(password)
}
