//! Analytics exports: the report rendered as an Excel workbook and a PDF.

mod excel;
mod pdf;

use application::analytics::{AnalyticsReport, ReportRenderer};
use application::AppError;

/// Renders exports with `rust_xlsxwriter` and `printpdf`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReportFiles;

impl ReportRenderer for ReportFiles {
    fn excel(&self, report: &AnalyticsReport) -> Result<Vec<u8>, AppError> {
        excel::workbook(report).map_err(|error| AppError::internal("writing the Excel export", error))
    }

    fn pdf(&self, report: &AnalyticsReport) -> Result<Vec<u8>, AppError> {
        pdf::document(report).map_err(|error| AppError::internal("writing the PDF export", error))
    }
}
