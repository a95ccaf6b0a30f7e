//! The report as a paginated A4 PDF. Charts are vector shapes drawn with
//! printpdf, and DejaVu Sans is embedded so the file looks the same everywhere,
//! whatever fonts the server or the reader has.

use application::analytics::{AgentStats, AnalyticsReport, HeatCell, OutcomeShare};
use printpdf::{
    Color, FontId, Line, LinePoint, Mm, Op, PaintMode, ParsedFont, PdfDocument, PdfFontHandle, PdfPage, PdfSaveOptions,
    Point, Pt, Rect, Rgb, TextItem, WindingOrder,
};

const REGULAR_TTF: &[u8] = include_bytes!("fonts/DejaVuSans.ttf");
const BOLD_TTF: &[u8] = include_bytes!("fonts/DejaVuSans-Bold.ttf");

/// A4 in points.
const PAGE_WIDTH: f32 = 595.28;
const PAGE_HEIGHT: f32 = 841.89;
const MARGIN: f32 = 42.0;
const CONTENT_WIDTH: f32 = PAGE_WIDTH - 2.0 * MARGIN;
/// Room kept under the content for the page footer.
const FOOTER_HEIGHT: f32 = 18.0;
const BOTTOM: f32 = PAGE_HEIGHT - MARGIN - FOOTER_HEIGHT;

const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

#[derive(Debug, thiserror::Error)]
pub(super) enum PdfError {
    #[error("the embedded font {0} cannot be read")]
    Font(&'static str),
}

pub(super) fn document(report: &AnalyticsReport) -> Result<Vec<u8>, PdfError> {
    let title = format!("VoxReach analytics — {}", report.organization_name);
    let mut pdf = PdfDocument::new(&title);
    let fonts = Fonts::embed(&mut pdf)?;
    let mut page = Layout::new(fonts);
    draw_title(&mut page, &title, report);
    draw_key_figures(&mut page, report);
    draw_funnel(&mut page, report);
    draw_calls_by_day(&mut page, report);
    draw_calls_by_hour(&mut page, report);
    draw_heatmap(&mut page, report);
    draw_agents(&mut page, &report.metrics.agent_stats);
    draw_outcomes(&mut page, &report.metrics.outcomes);
    let pages = page.finish(&title);
    // printpdf's warnings are about its own recoveries (e.g. a character without a glyph); the file is still valid.
    let mut warnings = Vec::new();
    Ok(pdf.with_pages(pages).save(&PdfSaveOptions::default(), &mut warnings))
}

// ---------------------------------------------------------------------------
// Drawing primitives
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
struct Shade {
    r: f32,
    g: f32,
    b: f32,
}

impl Shade {
    const fn rgb(r: u8, g: u8, b: u8) -> Self {
        Self {
            r: r as f32 / 255.0,
            g: g as f32 / 255.0,
            b: b as f32 / 255.0,
        }
    }

    /// The colour `amount` (0…1) of the way from `self` to `other`.
    fn towards(self, other: Shade, amount: f32) -> Shade {
        let amount = amount.clamp(0.0, 1.0);
        let mix = |from: f32, to: f32| from + (to - from) * amount;
        Shade {
            r: mix(self.r, other.r),
            g: mix(self.g, other.g),
            b: mix(self.b, other.b),
        }
    }

    fn is_dark(self) -> bool {
        0.299 * self.r + 0.587 * self.g + 0.114 * self.b < 0.55
    }

    fn color(self) -> Color {
        Color::Rgb(Rgb {
            r: self.r,
            g: self.g,
            b: self.b,
            icc_profile: None,
        })
    }
}

const INK: Shade = Shade::rgb(0x1F, 0x29, 0x37);
const MUTED: Shade = Shade::rgb(0x6B, 0x72, 0x80);
const ACCENT: Shade = Shade::rgb(0x25, 0x63, 0xEB);
const ACCENT_LIGHT: Shade = Shade::rgb(0xEF, 0xF4, 0xFF);
const RULE: Shade = Shade::rgb(0xD1, 0xD5, 0xDB);
const BAND: Shade = Shade::rgb(0xF3, 0xF4, 0xF6);
const LOW_SAMPLE: Shade = Shade::rgb(0xE5, 0xE7, 0xEB);
const WHITE: Shade = Shade::rgb(0xFF, 0xFF, 0xFF);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Weight {
    Regular,
    Bold,
}

#[derive(Debug, Clone, Copy)]
struct Style {
    weight: Weight,
    size: f32,
    shade: Shade,
}

impl Style {
    const fn new(weight: Weight, size: f32, shade: Shade) -> Self {
        Self { weight, size, shade }
    }
}

const TITLE: Style = Style::new(Weight::Bold, 18.0, INK);
const HEADING: Style = Style::new(Weight::Bold, 12.0, INK);
const BODY: Style = Style::new(Weight::Regular, 9.0, INK);
const BODY_BOLD: Style = Style::new(Weight::Bold, 9.0, INK);
const FIGURE: Style = Style::new(Weight::Bold, 13.0, INK);
const SMALL: Style = Style::new(Weight::Regular, 7.5, MUTED);
const TINY: Style = Style::new(Weight::Regular, 5.5, INK);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Align {
    Left,
    Right,
    Center,
}

/// The two embedded faces, kept parsed to measure text for alignment.
struct Fonts {
    regular: (FontId, ParsedFont),
    bold: (FontId, ParsedFont),
}

impl Fonts {
    fn embed(pdf: &mut PdfDocument) -> Result<Self, PdfError> {
        let mut parse = |bytes: &[u8], name: &'static str| {
            let font = ParsedFont::from_bytes(bytes, 0, &mut Vec::new()).ok_or(PdfError::Font(name))?;
            Ok((pdf.add_font(&font), font))
        };
        Ok(Self {
            regular: parse(REGULAR_TTF, "DejaVuSans.ttf")?,
            bold: parse(BOLD_TTF, "DejaVuSans-Bold.ttf")?,
        })
    }

    fn face(&self, weight: Weight) -> &(FontId, ParsedFont) {
        match weight {
            Weight::Regular => &self.regular,
            Weight::Bold => &self.bold,
        }
    }

    fn width(&self, text: &str, style: Style) -> f32 {
        let (_, font) = self.face(style.weight);
        let units: u32 = text
            .chars()
            .filter_map(|character| font.lookup_glyph_index(u32::from(character)))
            .filter_map(|glyph| font.get_glyph_width(glyph))
            .map(u32::from)
            .sum();
        units as f32 * style.size / f32::from(font.units_per_em.max(1))
    }
}

/// Pages laid out top-down: `cursor` is the distance from the top of the page to the next free line.
struct Layout {
    fonts: Fonts,
    pages: Vec<Vec<Op>>,
    ops: Vec<Op>,
    cursor: f32,
}

impl Layout {
    fn new(fonts: Fonts) -> Self {
        Self {
            fonts,
            pages: Vec::new(),
            ops: Vec::new(),
            cursor: MARGIN,
        }
    }

    fn new_page(&mut self) {
        self.pages.push(std::mem::take(&mut self.ops));
        self.cursor = MARGIN;
    }

    fn fits(&self, height: f32) -> bool {
        self.cursor + height <= BOTTOM
    }

    /// Takes `height` points for a block, on a new page when this one has no room left; returns the block's top.
    fn reserve(&mut self, height: f32) -> f32 {
        if !self.fits(height) && self.cursor > MARGIN {
            self.new_page();
        }
        let top = self.cursor;
        self.cursor += height;
        top
    }

    fn text(&mut self, text: &str, x: f32, baseline: f32, style: Style, align: Align) {
        let width = self.fonts.width(text, style);
        let left = match align {
            Align::Left => x,
            Align::Right => x - width,
            Align::Center => x - width / 2.0,
        };
        let (font, _) = self.fonts.face(style.weight);
        self.ops.extend([
            Op::StartTextSection,
            Op::SetFont {
                font: PdfFontHandle::External(font.clone()),
                size: Pt(style.size),
            },
            Op::SetFillColor {
                col: style.shade.color(),
            },
            Op::SetTextCursor {
                pos: point(left, baseline),
            },
            Op::ShowText {
                items: vec![TextItem::Text(text.to_string())],
            },
            Op::EndTextSection,
        ]);
    }

    /// `text` cut with an ellipsis to fit in `width`.
    fn fitted(&self, text: &str, width: f32, style: Style) -> String {
        if self.fonts.width(text, style) <= width {
            return text.to_string();
        }
        let mut kept: String = text.to_string();
        while !kept.is_empty() && self.fonts.width(&format!("{kept}…"), style) > width {
            kept.pop();
        }
        format!("{}…", kept.trim_end())
    }

    fn fill_rect(&mut self, x: f32, top: f32, width: f32, height: f32, shade: Shade) {
        self.ops.extend([
            Op::SetFillColor { col: shade.color() },
            Op::DrawRectangle {
                rectangle: Rect {
                    x: Pt(x),
                    y: Pt(PAGE_HEIGHT - top - height),
                    width: Pt(width),
                    height: Pt(height),
                    mode: Some(PaintMode::Fill),
                    winding_order: Some(WindingOrder::NonZero),
                },
            },
        ]);
    }

    fn polyline(&mut self, points: &[(f32, f32)], shade: Shade, thickness: f32) {
        let points = points
            .iter()
            .map(|&(x, y)| LinePoint {
                p: point(x, y),
                bezier: false,
            })
            .collect();
        self.ops.extend([
            Op::SetOutlineColor { col: shade.color() },
            Op::SetOutlineThickness { pt: Pt(thickness) },
            Op::DrawLine {
                line: Line {
                    points,
                    is_closed: false,
                },
            },
        ]);
    }

    fn rule(&mut self, from: (f32, f32), to: (f32, f32), shade: Shade) {
        self.polyline(&[from, to], shade, 0.5);
    }

    /// A section heading and `body_height` points under it, on one page; returns the top of the body.
    fn section(&mut self, heading: &str, body_height: f32) -> f32 {
        const HEADING_HEIGHT: f32 = 24.0;
        const GAP_AFTER: f32 = 12.0;
        let top = self.reserve(HEADING_HEIGHT + body_height + GAP_AFTER);
        self.text(heading, MARGIN, top + 14.0, HEADING, Align::Left);
        top + HEADING_HEIGHT
    }

    /// The pages with their footers ("page n of N" needs the page count, known only now).
    fn finish(mut self, title: &str) -> Vec<PdfPage> {
        self.new_page();
        let count = self.pages.len();
        let pages = std::mem::take(&mut self.pages);
        pages
            .into_iter()
            .enumerate()
            .map(|(index, ops)| {
                self.ops = ops;
                let baseline = PAGE_HEIGHT - MARGIN;
                self.rule((MARGIN, baseline - 10.0), (PAGE_WIDTH - MARGIN, baseline - 10.0), RULE);
                let title = self.fitted(title, CONTENT_WIDTH - 80.0, SMALL);
                self.text(&title, MARGIN, baseline, SMALL, Align::Left);
                let number = format!("Page {} of {count}", index + 1);
                self.text(&number, PAGE_WIDTH - MARGIN, baseline, SMALL, Align::Right);
                PdfPage::new(
                    Mm::from(Pt(PAGE_WIDTH)),
                    Mm::from(Pt(PAGE_HEIGHT)),
                    std::mem::take(&mut self.ops),
                )
            })
            .collect()
    }
}

/// A point measured from the top-left corner, in PDF's bottom-left coordinates.
fn point(x: f32, top: f32) -> Point {
    Point {
        x: Pt(x),
        y: Pt(PAGE_HEIGHT - top),
    }
}

// ---------------------------------------------------------------------------
// Number formats
// ---------------------------------------------------------------------------

/// 12345 → "12,345".
fn thousands(value: i64) -> String {
    let digits = value.unsigned_abs().to_string();
    let grouped: Vec<&str> = digits
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(|chunk| std::str::from_utf8(chunk).unwrap_or_default())
        .collect();
    let sign = if value < 0 { "-" } else { "" };
    format!("{sign}{}", grouped.join(","))
}

fn percent(value: f64) -> String {
    format!("{value:.1}%")
}

/// 96.4 → "1 min 36 s".
fn duration(seconds: f64) -> String {
    let rounded = seconds.round().max(0.0) as i64;
    if rounded < 60 {
        format!("{rounded} s")
    } else {
        format!("{} min {:02} s", rounded / 60, rounded % 60)
    }
}

fn or_dash(value: Option<f64>, format: impl Fn(f64) -> String) -> String {
    value.map_or_else(|| "–".to_string(), format)
}

/// Gridlines over a chart's value axis, the top one included.
const TICKS: u32 = 4;

/// The top of a value axis: `TICKS` steps of a whole, round size (1, 2, 3, 4, 5, 6 or 8 × 10ⁿ) reaching `max`,
/// so every gridline is a round count of calls.
fn axis_top(max: f64) -> f64 {
    let raw_step = max / f64::from(TICKS);
    if raw_step <= 1.0 {
        return f64::from(TICKS);
    }
    let magnitude = 10f64.powf(raw_step.log10().floor());
    let step = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
        .into_iter()
        .map(|multiple| multiple * magnitude)
        .find(|step| *step >= raw_step)
        .unwrap_or(10.0 * magnitude);
    step * f64::from(TICKS)
}

// ---------------------------------------------------------------------------
// Sections
// ---------------------------------------------------------------------------

fn draw_title(page: &mut Layout, title: &str, report: &AnalyticsReport) {
    let top = page.reserve(52.0);
    let title = page.fitted(title, CONTENT_WIDTH, TITLE);
    page.text(&title, MARGIN, top + 18.0, TITLE, Align::Left);
    let subtitle = format!(
        "{} to {} · local time {} · conversion to {}",
        report.start_date.format("%-d %B %Y"),
        report.end_date.format("%-d %B %Y"),
        report.timezone,
        report.target.as_str()
    );
    page.text(&subtitle, MARGIN, top + 36.0, SMALL, Align::Left);
    page.rule((MARGIN, top + 46.0), (PAGE_WIDTH - MARGIN, top + 46.0), RULE);
}

fn key_figures(report: &AnalyticsReport) -> Vec<(&'static str, String)> {
    let metrics = &report.metrics;
    vec![
        ("Total calls", thousands(metrics.total_calls)),
        ("Conversion rate", percent(metrics.conversion_rate)),
        ("Avg talk time", duration(metrics.avg_talk_time)),
        ("Avg listen time", duration(metrics.avg_listen_time)),
        ("Talk ratio", format!("{:.2}", metrics.talk_ratio)),
        (
            "Best hour",
            metrics
                .best_time_to_call
                .as_ref()
                .map_or("–".into(), |best| format!("{:02}:00", best.hour)),
        ),
        (
            "Best day",
            metrics
                .best_day_to_call
                .as_ref()
                .map_or("–".into(), |best| best.day.clone()),
        ),
        (
            "Avg sentiment",
            or_dash(report.sentiment.average, |value| format!("{value:+.2}")),
        ),
        (
            "Checklist adherence",
            or_dash(report.adherence.average, |value| percent(value * 100.0)),
        ),
        ("Silence", percent(report.talk.silence_share * 100.0)),
        (
            "Interruptions per call",
            format!("{:.1}", report.talk.avg_interruptions),
        ),
        ("Longest monologue", duration(report.talk.avg_longest_monologue)),
    ]
}

fn draw_key_figures(page: &mut Layout, report: &AnalyticsReport) {
    const COLUMNS: usize = 4;
    const BOX_HEIGHT: f32 = 38.0;
    const GAP: f32 = 6.0;
    let figures = key_figures(report);
    let rows = figures.len().div_ceil(COLUMNS);
    let top = page.section("Key figures", rows as f32 * (BOX_HEIGHT + GAP));
    let box_width = (CONTENT_WIDTH - GAP * (COLUMNS as f32 - 1.0)) / COLUMNS as f32;
    for (index, (label, value)) in figures.iter().enumerate() {
        let x = MARGIN + (index % COLUMNS) as f32 * (box_width + GAP);
        let y = top + (index / COLUMNS) as f32 * (BOX_HEIGHT + GAP);
        page.fill_rect(x, y, box_width, BOX_HEIGHT, ACCENT_LIGHT);
        page.text(label, x + 7.0, y + 12.0, SMALL, Align::Left);
        page.text(value, x + 7.0, y + 30.0, FIGURE, Align::Left);
    }
}

fn draw_funnel(page: &mut Layout, report: &AnalyticsReport) {
    const ROW: f32 = 18.0;
    const LABEL_WIDTH: f32 = 90.0;
    const FIGURES_WIDTH: f32 = 130.0;
    let stages = &report.metrics.funnel_stages;
    let top = page.section("Funnel", (stages.len().max(1) as f32) * ROW + 6.0);
    if stages.is_empty() {
        page.text("No calls in this range.", MARGIN, top + 10.0, BODY, Align::Left);
        return;
    }
    let widest = stages.iter().map(|stage| stage.count).max().unwrap_or(0).max(1) as f32;
    let bar_space = CONTENT_WIDTH - LABEL_WIDTH - FIGURES_WIDTH;
    for (index, stage) in stages.iter().enumerate() {
        let y = top + index as f32 * ROW;
        page.text(&stage.stage, MARGIN, y + 12.0, BODY, Align::Left);
        let width = bar_space * stage.count as f32 / widest;
        page.fill_rect(MARGIN + LABEL_WIDTH, y + 2.0, width.max(1.0), ROW - 5.0, ACCENT);
        let figures = if index == 0 {
            thousands(stage.count)
        } else {
            format!(
                "{} · {} of previous",
                thousands(stage.count),
                percent(stage.conversion_rate)
            )
        };
        page.text(
            &figures,
            MARGIN + LABEL_WIDTH + width + 6.0,
            y + 12.0,
            BODY,
            Align::Left,
        );
    }
}

/// The plotting area of a chart, with its value axis from 0 to `y_max`.
struct Plot {
    left: f32,
    top: f32,
    width: f32,
    height: f32,
    y_max: f64,
}

impl Plot {
    const AXIS_LABEL_WIDTH: f32 = 34.0;
    const X_LABEL_HEIGHT: f32 = 16.0;

    /// A plot filling the content width under `top`, `height` tall including its axis labels.
    fn new(top: f32, height: f32, max_value: i64) -> Self {
        Self {
            left: MARGIN + Self::AXIS_LABEL_WIDTH,
            top,
            width: CONTENT_WIDTH - Self::AXIS_LABEL_WIDTH,
            height: height - Self::X_LABEL_HEIGHT,
            y_max: axis_top(max_value as f64),
        }
    }

    fn bottom(&self) -> f32 {
        self.top + self.height
    }

    fn y(&self, value: f64) -> f32 {
        self.bottom() - (value / self.y_max) as f32 * self.height
    }

    /// Gridlines with their values, and the two axes.
    fn draw_frame(&self, page: &mut Layout) {
        for tick in 0..=TICKS {
            let value = self.y_max * f64::from(tick) / f64::from(TICKS);
            let y = self.y(value);
            page.rule((self.left, y), (self.left + self.width, y), BAND.towards(RULE, 0.5));
            page.text(
                &thousands(value.round() as i64),
                self.left - 4.0,
                y + 2.5,
                SMALL,
                Align::Right,
            );
        }
        page.rule((self.left, self.top), (self.left, self.bottom()), MUTED);
        page.rule(
            (self.left, self.bottom()),
            (self.left + self.width, self.bottom()),
            MUTED,
        );
    }

    fn x_label(&self, page: &mut Layout, label: &str, x: f32) {
        page.text(label, x, self.bottom() + 11.0, SMALL, Align::Center);
    }
}

fn draw_calls_by_day(page: &mut Layout, report: &AnalyticsReport) {
    const HEIGHT: f32 = 150.0;
    const LABELS: usize = 7;
    let days = &report.metrics.calls_by_day;
    let top = page.section("Calls by day", HEIGHT + 8.0);
    let plot = Plot::new(top, HEIGHT, days.iter().map(|day| day.count).max().unwrap_or(0));
    plot.draw_frame(page);
    if days.is_empty() {
        return;
    }
    let step = plot.width / (days.len().max(2) - 1) as f32;
    let points: Vec<(f32, f32)> = (0..)
        .zip(days)
        .map(|(index, day)| (plot.left + index as f32 * step, plot.y(day.count as f64)))
        .collect();
    page.polyline(&points, ACCENT, 1.0);
    // A handful of evenly spread dates, always the first and the last.
    let mut labelled: Vec<usize> = (0..LABELS)
        .map(|index| index * (days.len() - 1) / (LABELS - 1))
        .collect();
    labelled.dedup();
    for index in labelled {
        let label = days[index].date.format("%-d %b").to_string();
        plot.x_label(page, &label, points[index].0);
    }
}

fn draw_calls_by_hour(page: &mut Layout, report: &AnalyticsReport) {
    const HEIGHT: f32 = 140.0;
    let hours = &report.metrics.calls_by_hour;
    let top = page.section("Calls by hour of the day", HEIGHT + 8.0);
    let plot = Plot::new(top, HEIGHT, hours.iter().map(|hour| hour.count).max().unwrap_or(0));
    plot.draw_frame(page);
    let slot = plot.width / 24.0;
    for hour in hours.iter().filter(|hour| hour.hour < 24) {
        let x = plot.left + hour.hour as f32 * slot;
        let y = plot.y(hour.count as f64);
        page.fill_rect(x + slot * 0.15, y, slot * 0.7, plot.bottom() - y, ACCENT);
        if hour.hour % 3 == 0 {
            plot.x_label(page, &format!("{}:00", hour.hour), x + slot / 2.0);
        }
    }
}

fn draw_heatmap(page: &mut Layout, report: &AnalyticsReport) {
    const LABEL_WIDTH: f32 = 30.0;
    const CELL_HEIGHT: f32 = 17.0;
    const HOUR_LABELS: f32 = 12.0;
    let cells = &report.best_times.heatmap;
    let top = page.section("Calls by weekday and hour", HOUR_LABELS + 7.0 * CELL_HEIGHT + 24.0);
    let cell_width = (CONTENT_WIDTH - LABEL_WIDTH) / 24.0;
    let grid_left = MARGIN + LABEL_WIDTH;
    let grid_top = top + HOUR_LABELS;
    for hour in (0..24).step_by(2) {
        let x = grid_left + (hour as f32 + 0.5) * cell_width;
        page.text(&hour.to_string(), x, top + 7.0, SMALL, Align::Center);
    }
    for (row, weekday) in WEEKDAYS.iter().enumerate() {
        page.text(
            weekday,
            MARGIN,
            grid_top + row as f32 * CELL_HEIGHT + 11.5,
            SMALL,
            Align::Left,
        );
    }
    let busiest = cells.iter().map(|cell| cell.calls).max().unwrap_or(0);
    // Placed by the cell's own weekday and hour, so a missing cell leaves a gap instead of shifting the grid.
    for cell in cells
        .iter()
        .filter(|cell| (1..=7).contains(&cell.weekday) && cell.hour < 24)
    {
        let x = grid_left + cell.hour as f32 * cell_width;
        let y = grid_top + (cell.weekday - 1) as f32 * CELL_HEIGHT;
        let fill = heat_shade(cell, busiest.max(1) as f32);
        page.fill_rect(x + 0.5, y + 0.5, cell_width - 1.0, CELL_HEIGHT - 1.0, fill);
        if cell.calls > 0 {
            let ink = if fill.is_dark() { WHITE } else { INK };
            let style = Style { shade: ink, ..TINY };
            page.text(
                &cell.calls.to_string(),
                x + cell_width / 2.0,
                y + 10.5,
                style,
                Align::Center,
            );
        }
    }
    let legend = format!(
        "Darker: more calls (busiest cell {}). Grey: fewer than {} calls, shown but never ranked.",
        thousands(busiest),
        report.best_times.min_sample
    );
    page.text(&legend, MARGIN, grid_top + 7.0 * CELL_HEIGHT + 14.0, SMALL, Align::Left);
}

fn heat_shade(cell: &HeatCell, busiest: f32) -> Shade {
    if cell.low_sample {
        LOW_SAMPLE
    } else {
        ACCENT_LIGHT.towards(ACCENT, cell.calls as f32 / busiest)
    }
}

struct Column {
    title: &'static str,
    width: f32,
    align: Align,
}

impl Column {
    const fn new(title: &'static str, width: f32, align: Align) -> Self {
        Self { title, width, align }
    }
}

/// A table that runs over as many pages as it needs, its header repeated on each.
fn draw_table(page: &mut Layout, heading: &str, columns: &[Column], rows: &[Vec<String>]) {
    const ROW: f32 = 15.0;
    start_table(page, heading, columns, ROW);
    if rows.is_empty() {
        let top = page.reserve(ROW);
        page.text("None in this range.", MARGIN + 4.0, top + 10.5, BODY, Align::Left);
    }
    for (index, row) in rows.iter().enumerate() {
        if !page.fits(ROW) {
            page.new_page();
            start_table(page, &format!("{heading} (continued)"), columns, ROW);
        }
        let top = page.reserve(ROW);
        if index % 2 == 1 {
            page.fill_rect(MARGIN, top, CONTENT_WIDTH, ROW, BAND);
        }
        draw_table_cells(page, columns, row, top + 10.5, BODY);
    }
    page.cursor += 10.0;
}

/// The heading and the column titles, kept on one page with room for the first row.
fn start_table(page: &mut Layout, heading: &str, columns: &[Column], row_height: f32) {
    // Only the heading is taken here: the header and the rows then take their room one by one.
    page.cursor = page.section(heading, row_height * 2.0);
    let top = page.reserve(row_height);
    let titles: Vec<String> = columns.iter().map(|column| column.title.to_string()).collect();
    draw_table_cells(page, columns, &titles, top + 10.5, BODY_BOLD);
    page.rule(
        (MARGIN, top + row_height),
        (PAGE_WIDTH - MARGIN, top + row_height),
        MUTED,
    );
}

fn draw_table_cells(page: &mut Layout, columns: &[Column], cells: &[String], baseline: f32, style: Style) {
    const PADDING: f32 = 4.0;
    let mut left = MARGIN;
    for (column, cell) in columns.iter().zip(cells) {
        let text = page.fitted(cell, column.width - 2.0 * PADDING, style);
        let x = match column.align {
            Align::Left => left + PADDING,
            Align::Right => left + column.width - PADDING,
            Align::Center => left + column.width / 2.0,
        };
        page.text(&text, x, baseline, style, column.align);
        left += column.width;
    }
}

fn draw_agents(page: &mut Layout, agents: &[AgentStats]) {
    let columns = [
        Column::new("#", 22.0, Align::Right),
        Column::new("Agent", 117.0, Align::Left),
        Column::new("Calls", 46.0, Align::Right),
        Column::new("Conversion", 66.0, Align::Right),
        Column::new("Avg duration", 74.0, Align::Right),
        Column::new("Talk ratio", 60.0, Align::Right),
        Column::new("Sentiment", 63.0, Align::Right),
        Column::new("Adherence", 63.0, Align::Right),
    ];
    let rows: Vec<Vec<String>> = agents
        .iter()
        .map(|agent| {
            vec![
                agent.rank.to_string(),
                agent.agent_name.clone(),
                thousands(agent.calls),
                percent(agent.conversion_rate),
                duration(agent.avg_call_duration),
                or_dash(agent.talk_ratio, |ratio| format!("{ratio:.2}")),
                or_dash(agent.avg_sentiment, |sentiment| format!("{sentiment:+.2}")),
                or_dash(agent.adherence, |adherence| percent(adherence * 100.0)),
            ]
        })
        .collect();
    draw_table(page, "Agents", &columns, &rows);
}

fn draw_outcomes(page: &mut Layout, outcomes: &[OutcomeShare]) {
    let columns = [
        Column::new("Outcome", 200.0, Align::Left),
        Column::new("Calls", 80.0, Align::Right),
        Column::new("Share of calls", 90.0, Align::Right),
    ];
    let rows: Vec<Vec<String>> = outcomes
        .iter()
        .map(|outcome| {
            vec![
                outcome.outcome.replace('_', " "),
                thousands(outcome.count),
                percent(outcome.percentage),
            ]
        })
        .collect();
    draw_table(page, "Outcomes", &columns, &rows);
}

#[cfg(test)]
mod tests {
    use super::super::excel::sample_reports::{empty_report, year_report, ORGANIZATION};
    use super::*;
    use lopdf::{Document, Object};

    fn load(bytes: &[u8]) -> Document {
        Document::load_mem(bytes).expect("the export parses as a PDF")
    }

    #[test]
    fn number_formats() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(-4_200), "-4,200");
        assert_eq!(duration(42.4), "42 s");
        assert_eq!(duration(96.4), "1 min 36 s");
        assert_eq!(axis_top(0.0), 4.0);
        assert_eq!(axis_top(3.0), 4.0);
        assert_eq!(axis_top(9.0), 12.0);
        assert_eq!(axis_top(113.0), 120.0);
        assert_eq!(axis_top(365.0), 400.0);
        assert_eq!(axis_top(2_795.0), 3_200.0);
    }

    #[test]
    fn a_year_of_calls_fills_several_pages_whose_text_can_be_read() {
        let report = year_report();
        let bytes = document(&report).expect("the PDF renders");
        let pdf = load(&bytes);

        let pages = pdf.get_pages();
        assert!(pages.len() >= 2, "{} pages", pages.len());
        let first_page = pdf.extract_text(&[1]).expect("page 1 text");
        assert!(first_page.contains(ORGANIZATION), "{first_page}");
        assert!(
            first_page.contains(&thousands(report.metrics.total_calls)),
            "{first_page}"
        );
        assert!(first_page.contains("Funnel"), "{first_page}");

        let all_pages: Vec<u32> = pages.keys().copied().collect();
        let text = pdf.extract_text(&all_pages).expect("the text of every page");
        for agent in &report.metrics.agent_stats {
            assert!(text.contains(&agent.agent_name), "{} is missing", agent.agent_name);
        }
        assert!(text.contains("not interested"));
    }

    #[test]
    fn the_fonts_are_embedded() {
        let pdf = load(&document(&year_report()).expect("the PDF renders"));
        let font_programs: Vec<usize> = pdf
            .objects
            .values()
            .filter_map(|object| object.as_dict().ok()?.get(b"FontFile2").ok()?.as_reference().ok())
            .map(|id| {
                pdf.get_object(id)
                    .and_then(Object::as_stream)
                    .expect("a font stream")
                    .content
                    .len()
            })
            .collect();
        assert_eq!(font_programs.len(), 2, "the regular and the bold face");
        assert!(font_programs.iter().all(|length| *length > 10_000), "{font_programs:?}");
    }

    #[test]
    fn a_long_agent_table_repeats_its_header_on_the_next_page() {
        let mut report = year_report();
        let template = report.metrics.agent_stats[0].clone();
        report.metrics.agent_stats = (1..=120)
            .map(|rank| AgentStats {
                rank,
                agent_name: format!("Agent {rank:03}"),
                ..template.clone()
            })
            .collect();
        let pdf = load(&document(&report).expect("the PDF renders"));
        let pages: Vec<u32> = pdf.get_pages().keys().copied().collect();
        let page_texts: Vec<String> = pages
            .iter()
            .map(|page| pdf.extract_text(&[*page]).expect("the page's text"))
            .collect();
        let with_header = page_texts.iter().filter(|text| text.contains("Avg duration")).count();
        assert!(with_header >= 2, "the agents header is on {with_header} pages");
        assert!(page_texts.iter().any(|text| text.contains("Agents (continued)")));
        assert!(page_texts.iter().any(|text| text.contains("Agent 120")));
        let last_outcome = report.metrics.outcomes.last().expect("outcomes");
        assert!(page_texts.last().expect("pages").contains(&last_outcome.outcome));
    }

    #[test]
    fn a_range_without_calls_renders() {
        let bytes = document(&empty_report()).expect("the PDF renders");
        let text = load(&bytes).extract_text(&[1]).expect("page 1 text");
        assert!(text.contains("No calls in this range."), "{text}");
    }
}
