//! The report as an Excel workbook: one worksheet per section, numbers kept as
//! numbers under real formats, and native charts so the figures can be worked on.

use application::analytics::{AgentStats, AnalyticsReport, HeatCell, WEEKDAY_NAMES};
use chrono::NaiveDate;
use rust_xlsxwriter::{
    Chart, ChartType, ColNum, Color, ConditionalFormat3ColorScale, Format, FormatBorder, RowNum, Workbook, Worksheet,
    XlsxError,
};
use std::collections::HashMap;

const OVERVIEW: &str = "Overview";
const FUNNEL: &str = "Funnel";
const BY_DAY: &str = "By day";
const BY_HOUR: &str = "By hour";
const HEATMAP: &str = "Heatmap";
const AGENTS: &str = "Agents";
const OUTCOMES: &str = "Outcomes";

pub(super) fn workbook(report: &AnalyticsReport) -> Result<Vec<u8>, XlsxError> {
    let formats = Formats::new();
    let mut workbook = Workbook::new();
    write_overview(sheet(&mut workbook, OVERVIEW)?, report, &formats)?;
    write_funnel(sheet(&mut workbook, FUNNEL)?, report, &formats)?;
    write_by_day(sheet(&mut workbook, BY_DAY)?, report, &formats)?;
    write_by_hour(sheet(&mut workbook, BY_HOUR)?, report, &formats)?;
    write_heatmap(sheet(&mut workbook, HEATMAP)?, report, &formats)?;
    write_agents(sheet(&mut workbook, AGENTS)?, &report.metrics.agent_stats, &formats)?;
    write_outcomes(sheet(&mut workbook, OUTCOMES)?, report, &formats)?;
    workbook.save_to_buffer()
}

fn sheet<'a>(workbook: &'a mut Workbook, name: &str) -> Result<&'a mut Worksheet, XlsxError> {
    workbook.add_worksheet().set_name(name)
}

/// The cell formats, made once and shared by every sheet.
struct Formats {
    title: Format,
    header: Format,
    count: Format,
    /// Excel percentages: the cell holds the fraction (0.425), shown as 42.5%.
    share: Format,
    seconds: Format,
    ratio: Format,
    date: Format,
    hour: Format,
    /// A heatmap cell with fewer calls than the minimum sample: shown, never ranked.
    low_sample_count: Format,
    low_sample_share: Format,
    /// Grey italic, for explanations and missing figures.
    note: Format,
}

impl Formats {
    fn new() -> Self {
        let low_sample = Format::new().set_italic().set_font_color(Color::Gray);
        Self {
            title: Format::new().set_bold().set_font_size(16),
            header: Format::new()
                .set_bold()
                .set_background_color(Color::RGB(0xDDE5F0))
                .set_border_bottom(FormatBorder::Thin),
            count: Format::new().set_num_format("#,##0"),
            share: Format::new().set_num_format("0.0%"),
            seconds: Format::new().set_num_format("0.0"),
            ratio: Format::new().set_num_format("0.00"),
            date: Format::new().set_num_format("yyyy-mm-dd"),
            hour: Format::new().set_num_format("0\":00\""),
            low_sample_count: low_sample.clone().set_num_format("#,##0"),
            low_sample_share: low_sample.set_num_format("0.0%"),
            note: Format::new().set_italic().set_font_color(Color::Gray),
        }
    }
}

/// Rates in the report are percents (42.5 means 42.5%); an Excel percentage cell holds the fraction.
fn fraction(percent: f64) -> f64 {
    percent / 100.0
}

/// Row of the `index`th data line under a header in row `header_row`.
fn data_row(header_row: RowNum, index: usize) -> Result<RowNum, XlsxError> {
    RowNum::try_from(index)
        .ok()
        .and_then(|index| header_row.checked_add(1)?.checked_add(index))
        .ok_or(XlsxError::RowColumnLimitError)
}

fn write_header(sheet: &mut Worksheet, row: RowNum, titles: &[&str], formats: &Formats) -> Result<(), XlsxError> {
    for (col, title) in (0..).zip(titles) {
        sheet.write_string_with_format(row, col, *title, &formats.header)?;
    }
    Ok(())
}

/// A header row that stays in view while the rows under it scroll (and its first `frozen_cols` columns too).
fn write_frozen_header(
    sheet: &mut Worksheet,
    row: RowNum,
    titles: &[&str],
    frozen_cols: ColNum,
    formats: &Formats,
) -> Result<(), XlsxError> {
    write_header(sheet, row, titles, formats)?;
    sheet.set_freeze_panes(row + 1, frozen_cols)?;
    Ok(())
}

fn set_widths(sheet: &mut Worksheet, widths: &[f64]) -> Result<(), XlsxError> {
    for (col, width) in (0..).zip(widths) {
        sheet.set_column_width(col, *width)?;
    }
    Ok(())
}

/// An empty cell when the figure does not exist (no scored calls, no checklist…), so sums and averages skip it.
fn write_optional(
    sheet: &mut Worksheet,
    row: RowNum,
    col: ColNum,
    value: Option<f64>,
    format: &Format,
) -> Result<(), XlsxError> {
    if let Some(value) = value {
        sheet.write_number_with_format(row, col, value, format)?;
    }
    Ok(())
}

/// A one-series chart of column `value_col` against column 0, over the `rows` rows under the header in row 0.
struct SeriesChart<'a> {
    kind: ChartType,
    sheet_name: &'a str,
    title: &'a str,
    rows: usize,
    value_col: ColNum,
    /// The cell the chart's top-left corner sits on.
    anchor: (RowNum, ColNum),
}

impl SeriesChart<'_> {
    fn insert(self, sheet: &mut Worksheet) -> Result<(), XlsxError> {
        // A chart over no rows is an invalid range for Excel: leave it out.
        if self.rows == 0 {
            return Ok(());
        }
        let last_row = data_row(0, self.rows - 1)?;
        let mut chart = Chart::new(self.kind);
        chart
            .add_series()
            .set_categories((self.sheet_name, 1, 0, last_row, 0))
            .set_values((self.sheet_name, 1, self.value_col, last_row, self.value_col));
        chart.title().set_name(self.title);
        chart.legend().set_hidden();
        if self.kind == ChartType::Bar {
            // Bar charts draw their first category at the bottom; the funnel reads top-down.
            chart.x_axis().set_reverse();
        }
        chart.set_width(640).set_height(320);
        sheet.insert_chart(self.anchor.0, self.anchor.1, &chart)?;
        Ok(())
    }
}

/// One line of the Overview sheet.
enum Figure {
    Count(i64),
    /// A 0…1 fraction, shown as a percentage.
    Share(f64),
    Seconds(f64),
    Ratio(f64),
    Text(String),
    /// The figure cannot be computed for this range (e.g. no scored calls).
    Missing,
}

impl Figure {
    fn optional(value: Option<f64>, figure: fn(f64) -> Figure) -> Figure {
        value.map_or(Figure::Missing, figure)
    }
}

fn write_overview(sheet: &mut Worksheet, report: &AnalyticsReport, formats: &Formats) -> Result<(), XlsxError> {
    sheet.write_string_with_format(
        0,
        0,
        format!("VoxReach analytics — {}", report.organization_name),
        &formats.title,
    )?;
    sheet.write_string_with_format(
        1,
        0,
        format!(
            "{} to {}, local time {}",
            report.start_date, report.end_date, report.timezone
        ),
        &formats.note,
    )?;
    const HEADER_ROW: RowNum = 3;
    write_frozen_header(sheet, HEADER_ROW, &["Figure", "Value"], 0, formats)?;
    set_widths(sheet, &[44.0, 28.0])?;
    for (index, (label, figure)) in overview_figures(report).into_iter().enumerate() {
        let row = data_row(HEADER_ROW, index)?;
        sheet.write_string(row, 0, label)?;
        match figure {
            Figure::Count(value) => sheet.write_number_with_format(row, 1, value as f64, &formats.count)?,
            Figure::Share(value) => sheet.write_number_with_format(row, 1, value, &formats.share)?,
            Figure::Seconds(value) => sheet.write_number_with_format(row, 1, value, &formats.seconds)?,
            Figure::Ratio(value) => sheet.write_number_with_format(row, 1, value, &formats.ratio)?,
            Figure::Text(value) => sheet.write_string(row, 1, value)?,
            Figure::Missing => sheet.write_string_with_format(row, 1, "n/a", &formats.note)?,
        };
    }
    Ok(())
}

fn overview_figures(report: &AnalyticsReport) -> Vec<(String, Figure)> {
    let metrics = &report.metrics;
    let best_hour = metrics.best_time_to_call.as_ref().map_or(Figure::Missing, |best| {
        Figure::Text(format!("{:02}:00 ({:.1}% conversion)", best.hour, best.conversion_rate))
    });
    let best_day = metrics.best_day_to_call.as_ref().map_or(Figure::Missing, |best| {
        Figure::Text(format!("{} ({:.1}% conversion)", best.day, best.conversion_rate))
    });
    vec![
        ("Total calls".into(), Figure::Count(metrics.total_calls)),
        (
            format!("Conversion rate (to {})", report.target.as_str()),
            Figure::Share(fraction(metrics.conversion_rate)),
        ),
        ("Average talk time (s)".into(), Figure::Seconds(metrics.avg_talk_time)),
        (
            "Average listen time (s)".into(),
            Figure::Seconds(metrics.avg_listen_time),
        ),
        (
            "Talk ratio (agent / prospect)".into(),
            Figure::Ratio(metrics.talk_ratio),
        ),
        ("Best hour to call".into(), best_hour),
        ("Best day to call".into(), best_day),
        (
            "Average sentiment (−1 to 1)".into(),
            Figure::optional(report.sentiment.average, Figure::Ratio),
        ),
        ("Positive calls".into(), Figure::Count(report.sentiment.positive)),
        ("Neutral calls".into(), Figure::Count(report.sentiment.neutral)),
        ("Negative calls".into(), Figure::Count(report.sentiment.negative)),
        (
            "Checklist adherence".into(),
            Figure::optional(report.adherence.average, Figure::Share),
        ),
        (
            "Calls scored for adherence".into(),
            Figure::Count(report.adherence.calls_scored),
        ),
        (
            "Average longest monologue (s)".into(),
            Figure::Seconds(report.talk.avg_longest_monologue),
        ),
        (
            "Interruptions per call".into(),
            Figure::Ratio(report.talk.avg_interruptions),
        ),
        ("Silence".into(), Figure::Share(report.talk.silence_share)),
        (
            "Calls without message timings".into(),
            Figure::Count(report.talk.calls_without_timings),
        ),
    ]
}

fn write_funnel(sheet: &mut Worksheet, report: &AnalyticsReport, formats: &Formats) -> Result<(), XlsxError> {
    let stages = &report.metrics.funnel_stages;
    write_frozen_header(sheet, 0, &["Stage", "Count", "Conversion from previous"], 0, formats)?;
    set_widths(sheet, &[18.0, 12.0, 26.0])?;
    for (index, stage) in stages.iter().enumerate() {
        let row = data_row(0, index)?;
        sheet.write_string(row, 0, &stage.stage)?;
        sheet.write_number_with_format(row, 1, stage.count as f64, &formats.count)?;
        sheet.write_number_with_format(row, 2, fraction(stage.conversion_rate), &formats.share)?;
    }
    SeriesChart {
        kind: ChartType::Bar,
        sheet_name: FUNNEL,
        title: "Funnel",
        rows: stages.len(),
        value_col: 1,
        anchor: (1, 4),
    }
    .insert(sheet)
}

fn write_by_day(sheet: &mut Worksheet, report: &AnalyticsReport, formats: &Formats) -> Result<(), XlsxError> {
    let days = &report.metrics.calls_by_day;
    // The trends cover the same days; joined by date in case one of them is shorter.
    let sentiment: HashMap<NaiveDate, Option<f64>> = report
        .sentiment
        .trend
        .iter()
        .map(|day| (day.date, day.average))
        .collect();
    let adherence: HashMap<NaiveDate, Option<f64>> = report
        .adherence
        .trend
        .iter()
        .map(|day| (day.date, day.average))
        .collect();
    write_frozen_header(
        sheet,
        0,
        &["Date", "Calls", "Average sentiment", "Checklist adherence"],
        0,
        formats,
    )?;
    set_widths(sheet, &[12.0, 10.0, 18.0, 20.0])?;
    for (index, day) in days.iter().enumerate() {
        let row = data_row(0, index)?;
        sheet.write_date_with_format(row, 0, day.date, &formats.date)?;
        sheet.write_number_with_format(row, 1, day.count as f64, &formats.count)?;
        write_optional(
            sheet,
            row,
            2,
            sentiment.get(&day.date).copied().flatten(),
            &formats.ratio,
        )?;
        write_optional(
            sheet,
            row,
            3,
            adherence.get(&day.date).copied().flatten(),
            &formats.share,
        )?;
    }
    SeriesChart {
        kind: ChartType::Line,
        sheet_name: BY_DAY,
        title: "Calls by day",
        rows: days.len(),
        value_col: 1,
        anchor: (1, 5),
    }
    .insert(sheet)
}

fn write_by_hour(sheet: &mut Worksheet, report: &AnalyticsReport, formats: &Formats) -> Result<(), XlsxError> {
    let hours = &report.metrics.calls_by_hour;
    write_frozen_header(sheet, 0, &["Hour", "Calls"], 0, formats)?;
    set_widths(sheet, &[8.0, 10.0])?;
    for (index, hour) in hours.iter().enumerate() {
        let row = data_row(0, index)?;
        sheet.write_number_with_format(row, 0, hour.hour, &formats.hour)?;
        sheet.write_number_with_format(row, 1, hour.count as f64, &formats.count)?;
    }
    SeriesChart {
        kind: ChartType::Column,
        sheet_name: BY_HOUR,
        title: "Calls by hour",
        rows: hours.len(),
        value_col: 1,
        anchor: (1, 3),
    }
    .insert(sheet)
}

/// One weekday × hour grid of the Heatmap sheet.
struct HeatGrid {
    title: &'static str,
    value: fn(&HeatCell) -> f64,
    format: fn(&Formats) -> &Format,
    low_sample_format: fn(&Formats) -> &Format,
}

const HEAT_GRIDS: [HeatGrid; 3] = [
    HeatGrid {
        title: "Calls",
        value: |cell| cell.calls as f64,
        format: |formats| &formats.count,
        low_sample_format: |formats| &formats.low_sample_count,
    },
    HeatGrid {
        title: "Conversion rate",
        value: |cell| fraction(cell.conversion_rate),
        format: |formats| &formats.share,
        low_sample_format: |formats| &formats.low_sample_share,
    },
    HeatGrid {
        title: "Contact rate",
        value: |cell| fraction(cell.contact_rate),
        format: |formats| &formats.share,
        low_sample_format: |formats| &formats.low_sample_share,
    },
];

/// Rows a grid takes: its header, the seven weekdays and a blank line.
const HEAT_GRID_HEIGHT: RowNum = 9;

fn write_heatmap(sheet: &mut Worksheet, report: &AnalyticsReport, formats: &Formats) -> Result<(), XlsxError> {
    let hour_titles: Vec<String> = (0..24).map(|hour| format!("{hour}:00")).collect();
    set_widths(sheet, &[16.0])?;
    for (top, grid) in (0..).step_by(HEAT_GRID_HEIGHT as usize).zip(&HEAT_GRIDS) {
        let titles: Vec<&str> = std::iter::once(grid.title)
            .chain(hour_titles.iter().map(String::as_str))
            .collect();
        write_header(sheet, top, &titles, formats)?;
        write_heat_grid(sheet, top, grid, &report.best_times.heatmap, formats)?;
    }
    // Weekday names and hours stay in view; the first grid's header is the hour scale for all three.
    sheet.set_freeze_panes(1, 1)?;
    let legend_row = HEAT_GRID_HEIGHT * HEAT_GRIDS.len() as RowNum;
    sheet.write_string_with_format(
        legend_row,
        0,
        format!(
            "Grey italic: fewer than {} calls in the cell, shown but never ranked.",
            report.best_times.min_sample
        ),
        &formats.note,
    )?;
    Ok(())
}

fn write_heat_grid(
    sheet: &mut Worksheet,
    top: RowNum,
    grid: &HeatGrid,
    cells: &[HeatCell],
    formats: &Formats,
) -> Result<(), XlsxError> {
    for (row, weekday) in (top + 1..).zip(WEEKDAY_NAMES) {
        sheet.write_string(row, 0, weekday)?;
    }
    // Placed by the cell's own weekday and hour, so a missing or out-of-order cell cannot shift the grid.
    for cell in cells
        .iter()
        .filter(|cell| (1..=7).contains(&cell.weekday) && cell.hour < 24)
    {
        let format = if cell.low_sample {
            (grid.low_sample_format)(formats)
        } else {
            (grid.format)(formats)
        };
        let col = ColNum::try_from(cell.hour + 1).map_err(|_| XlsxError::RowColumnLimitError)?;
        sheet.write_number_with_format(top + cell.weekday, col, (grid.value)(cell), format)?;
    }
    sheet.add_conditional_format(top + 1, 1, top + 7, 24, &ConditionalFormat3ColorScale::new())?;
    Ok(())
}

fn write_agents(sheet: &mut Worksheet, agents: &[AgentStats], formats: &Formats) -> Result<(), XlsxError> {
    const TITLES: [&str; 8] = [
        "Rank",
        "Agent",
        "Calls",
        "Conversion rate",
        "Average duration (s)",
        "Talk ratio",
        "Average sentiment",
        "Checklist adherence",
    ];
    write_frozen_header(sheet, 0, &TITLES, 2, formats)?;
    set_widths(sheet, &[6.0, 28.0, 10.0, 16.0, 20.0, 11.0, 18.0, 20.0])?;
    for (index, agent) in agents.iter().enumerate() {
        let row = data_row(0, index)?;
        sheet.write_number(row, 0, agent.rank)?;
        sheet.write_string(row, 1, &agent.agent_name)?;
        sheet.write_number_with_format(row, 2, agent.calls as f64, &formats.count)?;
        sheet.write_number_with_format(row, 3, fraction(agent.conversion_rate), &formats.share)?;
        sheet.write_number_with_format(row, 4, agent.avg_call_duration, &formats.seconds)?;
        write_optional(sheet, row, 5, agent.talk_ratio, &formats.ratio)?;
        write_optional(sheet, row, 6, agent.avg_sentiment, &formats.ratio)?;
        write_optional(sheet, row, 7, agent.adherence, &formats.share)?;
    }
    Ok(())
}

fn write_outcomes(sheet: &mut Worksheet, report: &AnalyticsReport, formats: &Formats) -> Result<(), XlsxError> {
    write_frozen_header(sheet, 0, &["Outcome", "Calls", "Share of calls"], 0, formats)?;
    set_widths(sheet, &[22.0, 10.0, 16.0])?;
    for (index, outcome) in report.metrics.outcomes.iter().enumerate() {
        let row = data_row(0, index)?;
        sheet.write_string(row, 0, &outcome.outcome)?;
        sheet.write_number_with_format(row, 1, outcome.count as f64, &formats.count)?;
        sheet.write_number_with_format(row, 2, fraction(outcome.percentage), &formats.share)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::sample_reports::{empty_report, year_report};
    use super::*;
    use calamine::{open_workbook_from_rs, Data, Reader, Xlsx};
    use std::io::{Cursor, Read};

    fn open(bytes: &[u8]) -> Xlsx<Cursor<Vec<u8>>> {
        open_workbook_from_rs(Cursor::new(bytes.to_vec())).expect("the export opens as an xlsx workbook")
    }

    fn cell(workbook: &mut Xlsx<Cursor<Vec<u8>>>, sheet: &str, row: u32, col: u32) -> Data {
        let range = workbook.worksheet_range(sheet).expect("the sheet exists");
        range.get_value((row, col)).cloned().unwrap_or(Data::Empty)
    }

    fn zip_entry(bytes: &[u8], name: &str) -> Option<String> {
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).expect("an xlsx is a zip archive");
        let mut entry = archive.by_name(name).ok()?;
        let mut text = String::new();
        entry.read_to_string(&mut text).expect("the entry is UTF-8 XML");
        Some(text)
    }

    #[test]
    fn workbook_has_a_sheet_per_section_with_the_reports_figures() {
        let report = year_report();
        let bytes = workbook(&report).expect("the workbook renders");
        let mut book = open(&bytes);

        assert_eq!(
            book.sheet_names(),
            [OVERVIEW, FUNNEL, BY_DAY, BY_HOUR, HEATMAP, AGENTS, OUTCOMES]
        );
        let title = cell(&mut book, OVERVIEW, 0, 0);
        assert_eq!(
            title,
            Data::String(format!("VoxReach analytics — {}", report.organization_name))
        );
        assert_eq!(cell(&mut book, OVERVIEW, 4, 0), Data::String("Total calls".into()));
        assert_eq!(
            cell(&mut book, OVERVIEW, 4, 1),
            Data::Float(report.metrics.total_calls as f64)
        );
        assert_eq!(
            cell(&mut book, OVERVIEW, 5, 1),
            Data::Float(report.metrics.conversion_rate / 100.0)
        );

        let second_stage = &report.metrics.funnel_stages[1];
        assert_eq!(cell(&mut book, FUNNEL, 2, 0), Data::String(second_stage.stage.clone()));
        assert_eq!(cell(&mut book, FUNNEL, 2, 1), Data::Float(second_stage.count as f64));

        // A real date cell (a serial number under a date format), not text.
        let day = &report.metrics.calls_by_day[40];
        let date = cell(&mut book, BY_DAY, 41, 0);
        let Data::DateTime(date) = date else {
            panic!("a date cell, not {date:?}")
        };
        assert_eq!(date.as_datetime().map(|at| at.date()), Some(day.date));
        assert_eq!(cell(&mut book, BY_DAY, 41, 1), Data::Float(day.count as f64));

        assert_eq!(cell(&mut book, BY_HOUR, 24, 0), Data::Float(23.0));
        let monday_nine = &report.best_times.heatmap[9];
        assert_eq!(cell(&mut book, HEATMAP, 1, 10), Data::Float(monday_nine.calls as f64));
        assert_eq!(cell(&mut book, HEATMAP, 7, 0), Data::String("Sunday".into()));

        let last_agent = report.metrics.agent_stats.last().expect("agents");
        assert_eq!(
            cell(&mut book, AGENTS, 20, 1),
            Data::String(last_agent.agent_name.clone())
        );
        assert_eq!(cell(&mut book, AGENTS, 20, 2), Data::Float(last_agent.calls as f64));
        let first_outcome = &report.metrics.outcomes[0];
        assert_eq!(
            cell(&mut book, OUTCOMES, 1, 0),
            Data::String(first_outcome.outcome.clone())
        );
    }

    #[test]
    fn workbook_has_native_charts_and_a_colour_scale_on_the_heatmap() {
        let bytes = workbook(&year_report()).expect("the workbook renders");

        for chart in ["xl/charts/chart1.xml", "xl/charts/chart2.xml", "xl/charts/chart3.xml"] {
            assert!(zip_entry(&bytes, chart).is_some(), "{chart} is missing");
        }
        // Sheets are numbered in the order they were added: Heatmap is the fifth.
        let heatmap = zip_entry(&bytes, "xl/worksheets/sheet5.xml").expect("the heatmap sheet");
        assert!(heatmap.contains("<conditionalFormatting"));
        assert!(heatmap.contains("<colorScale>"));
        let agents = zip_entry(&bytes, "xl/worksheets/sheet6.xml").expect("the agents sheet");
        assert!(agents.contains("state=\"frozen\""), "the agents header is frozen");
    }

    #[test]
    fn workbook_renders_a_report_without_calls() {
        let bytes = workbook(&empty_report()).expect("an empty report renders");
        let mut book = open(&bytes);
        assert_eq!(cell(&mut book, OVERVIEW, 4, 1), Data::Float(0.0));
        assert_eq!(cell(&mut book, AGENTS, 1, 1), Data::Empty);
    }
}

/// Hand-built reports for the tests of both renderers (the PDF tests borrow them from here).
#[cfg(test)]
pub(super) mod sample_reports {
    use application::analytics::*;
    use chrono::{Datelike, Days, NaiveDate};
    use uuid::Uuid;

    pub(in crate::analytics) const ORGANIZATION: &str = "Acme Solar Ltd";
    const MIN_SAMPLE: i64 = 30;
    const FIRST_NAMES: [&str; 10] = [
        "Alice", "Bruno", "Chloé", "Dmitri", "Emma", "Farid", "Grace", "Hugo", "Inès", "José",
    ];
    const LAST_NAMES: [&str; 2] = ["Martin", "O'Neill"];

    /// Relative call volume of each hour of a working day.
    fn hour_weight(hour: u32) -> i64 {
        match hour {
            9..=11 | 14..=16 => 10,
            8 | 12 | 13 | 17 | 18 => 6,
            7 | 19 | 20 => 2,
            _ => 0,
        }
    }

    fn day_count(date: NaiveDate) -> i64 {
        let weekend = date.weekday().number_from_monday() >= 6;
        let wobble = i64::from(date.ordinal() * 37 % 23);
        if weekend {
            10 + wobble / 2
        } else {
            90 + wobble
        }
    }

    fn calls_by_hour(total: i64) -> Vec<HourCount> {
        let weight_sum: i64 = (0..24).map(hour_weight).sum();
        let mut hours: Vec<HourCount> = (0..24)
            .map(|hour| HourCount {
                hour,
                count: total * hour_weight(hour) / weight_sum,
            })
            .collect();
        // The rounding remainder goes to the busiest hour, so the hours add up to the total.
        let assigned: i64 = hours.iter().map(|hour| hour.count).sum();
        hours[10].count += total - assigned;
        hours
    }

    fn heatmap() -> Vec<HeatCell> {
        (1..=7)
            .flat_map(|weekday| (0..24).map(move |hour| (weekday, hour)))
            .map(|(weekday, hour)| {
                let calls = hour_weight(hour) * if weekday >= 6 { 2 } else { 36 } + i64::from(weekday);
                HeatCell {
                    weekday,
                    hour,
                    calls,
                    contact_rate: 40.0 + f64::from(hour % 7) * 5.0,
                    conversion_rate: 5.0 + f64::from((weekday * 3 + hour) % 11) * 2.5,
                    low_sample: calls < MIN_SAMPLE,
                }
            })
            .collect()
    }

    fn funnel(total: i64) -> Vec<FunnelStage> {
        let counts = [
            total,
            total * 62 / 100,
            total * 21 / 100,
            total * 9 / 100,
            total * 3 / 100,
        ];
        let names = ["Calls", "Contacts", "Qualified", "Appointments", "Sales"];
        let mut previous = None;
        names
            .iter()
            .zip(counts)
            .map(|(stage, count)| {
                let conversion_rate = match previous {
                    None => 100.0,
                    Some(0) => 0.0,
                    Some(previous) => count as f64 * 100.0 / previous as f64,
                };
                previous = Some(count);
                FunnelStage {
                    stage: stage.to_string(),
                    count,
                    conversion_rate,
                }
            })
            .collect()
    }

    fn agents(total: i64) -> Vec<AgentStats> {
        (0..20u32)
            .map(|index| AgentStats {
                rank: index + 1,
                agent_id: Uuid::from_u128(u128::from(index) + 1),
                agent_name: format!(
                    "{} {}",
                    FIRST_NAMES[index as usize % 10],
                    LAST_NAMES[index as usize / 10]
                ),
                calls: total / 20 - i64::from(index) * 11,
                conversion_rate: 34.0 - f64::from(index) * 1.25,
                avg_call_duration: 182.5 + f64::from(index) * 3.5,
                talk_ratio: (index % 5 != 4).then(|| 0.8 + f64::from(index) * 0.05),
                avg_sentiment: (index != 19).then(|| 0.42 - f64::from(index) * 0.03),
                adherence: (index % 3 != 2).then(|| 0.91 - f64::from(index) * 0.01),
            })
            .collect()
    }

    fn outcomes(total: i64) -> Vec<OutcomeShare> {
        [
            ("no_answer", 31),
            ("voicemail", 17),
            ("not_interested", 21),
            ("callback", 8),
            ("qualified", 12),
            ("appointment", 8),
            ("sale", 3),
        ]
        .into_iter()
        .map(|(outcome, percent)| OutcomeShare {
            outcome: outcome.to_string(),
            count: total * percent / 100,
            percentage: percent as f64,
        })
        .collect()
    }

    /// A year of calls: 365 days, 20 agents, the full weekday × hour heatmap.
    pub(in crate::analytics) fn year_report() -> AnalyticsReport {
        let start = NaiveDate::from_ymd_opt(2025, 1, 1).expect("a valid date");
        let days: Vec<NaiveDate> = (0..365).map(|offset| start + Days::new(offset)).collect();
        let calls_by_day: Vec<DayCount> = days
            .iter()
            .map(|&date| DayCount {
                date,
                count: day_count(date),
            })
            .collect();
        let total_calls = calls_by_day.iter().map(|day| day.count).sum();
        let best_hour = BestHour {
            hour: 10,
            conversion_rate: 31.5,
        };
        let best_day = BestDay {
            day: "Tuesday".into(),
            conversion_rate: 27.25,
        };
        AnalyticsReport {
            organization_name: ORGANIZATION.into(),
            timezone: "Europe/Paris".into(),
            start_date: start,
            end_date: days[364],
            target: ConversionTarget::Qualified,
            metrics: AnalyticsMetrics {
                total_calls,
                calls_by_hour: calls_by_hour(total_calls),
                conversion_rate: 23.4,
                funnel_stages: funnel(total_calls),
                avg_talk_time: 96.4,
                avg_listen_time: 81.2,
                talk_ratio: 1.19,
                outcomes: outcomes(total_calls),
                agent_stats: agents(total_calls),
                best_time_to_call: Some(best_hour.clone()),
                best_day_to_call: Some(best_day.clone()),
                calls_by_day,
            },
            talk: TalkTime {
                avg_talk_time: 96.4,
                avg_listen_time: 81.2,
                talk_ratio: 1.19,
                avg_longest_monologue: 41.7,
                avg_interruptions: 2.3,
                silence_share: 0.12,
                calls_analyzed: total_calls - 120,
                calls_without_timings: 120,
            },
            best_times: BestTimes {
                best_time_to_call: Some(best_hour),
                best_day_to_call: Some(best_day),
                min_sample: MIN_SAMPLE,
                heatmap: heatmap(),
            },
            sentiment: Sentiment {
                average: Some(0.31),
                positive: total_calls * 45 / 100,
                neutral: total_calls * 40 / 100,
                negative: total_calls * 15 / 100,
                trend: days
                    .iter()
                    .map(|&date| SentimentDay {
                        date,
                        average: Some(0.3),
                        calls: day_count(date),
                    })
                    .collect(),
            },
            adherence: Adherence {
                average: Some(0.87),
                calls_scored: total_calls / 2,
                by_agent: Vec::new(),
                trend: days
                    .iter()
                    .map(|&date| AdherenceDay {
                        date,
                        average: None,
                        calls: 0,
                    })
                    .collect(),
                missed_points: vec![MissedPoint {
                    point: "Confirm the decision maker".into(),
                    calls: 240,
                }],
            },
        }
    }

    /// A range without a single call: zeros, nulls and empty lists everywhere.
    pub(in crate::analytics) fn empty_report() -> AnalyticsReport {
        let mut report = year_report();
        let no_calls = |day: &DayCount| DayCount {
            date: day.date,
            count: 0,
        };
        report.metrics = AnalyticsMetrics {
            total_calls: 0,
            calls_by_day: report.metrics.calls_by_day.iter().map(no_calls).collect(),
            calls_by_hour: (0..24).map(|hour| HourCount { hour, count: 0 }).collect(),
            conversion_rate: 0.0,
            funnel_stages: Vec::new(),
            avg_talk_time: 0.0,
            avg_listen_time: 0.0,
            talk_ratio: 0.0,
            outcomes: Vec::new(),
            agent_stats: Vec::new(),
            best_time_to_call: None,
            best_day_to_call: None,
        };
        report.best_times.best_time_to_call = None;
        report.best_times.best_day_to_call = None;
        for cell in &mut report.best_times.heatmap {
            *cell = HeatCell {
                calls: 0,
                contact_rate: 0.0,
                conversion_rate: 0.0,
                low_sample: true,
                ..*cell
            };
        }
        report.talk = TalkTime {
            avg_talk_time: 0.0,
            avg_listen_time: 0.0,
            talk_ratio: 0.0,
            avg_longest_monologue: 0.0,
            avg_interruptions: 0.0,
            silence_share: 0.0,
            calls_analyzed: 0,
            calls_without_timings: 0,
        };
        report.sentiment = Sentiment {
            average: None,
            positive: 0,
            neutral: 0,
            negative: 0,
            trend: Vec::new(),
        };
        report.adherence = Adherence {
            average: None,
            calls_scored: 0,
            by_agent: Vec::new(),
            trend: Vec::new(),
            missed_points: Vec::new(),
        };
        report
    }
}
