"""Report writers: files (CSV/Parquet/JSON), the finance workbook and plots. Writes are atomic."""
