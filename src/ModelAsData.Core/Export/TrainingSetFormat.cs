namespace ModelAsData.Core.Export;

/// <summary>The file format of an exported training set.</summary>
public enum TrainingSetFormat
{
    /// <summary>RFC 4180 CSV with a header line, written by PostgreSQL's COPY (FORMAT csv).</summary>
    Csv,

    /// <summary>Apache Parquet, one row group per 100,000 rows, every column nullable.</summary>
    Parquet,
}
