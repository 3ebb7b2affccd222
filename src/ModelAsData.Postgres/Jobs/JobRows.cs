using System.Text.Json;
using System.Text.Json.Nodes;
using ModelAsData.Core.Onnx;
using ModelAsData.Core.Registry;
using ModelAsData.Postgres.Registry;

namespace ModelAsData.Postgres.Jobs;

// Dapper targets with the column aliases of TableSql, converted to Core's records here.

internal sealed class TableRow
{
    public string Name { get; set; } = "";
    public string Source { get; set; } = "";
    public string[] KeyColumns { get; set; } = [];
    public string Model { get; set; } = "";
    public string Features { get; set; } = "{}";
    public string Columns { get; set; } = "[]";
    public DateTime? RefreshedAt { get; set; }
    public int? RefreshedVersion { get; set; }
    public long? RowsScored { get; set; }
    public long? RowsFailed { get; set; }

    public PredictionTable ToTable() => new(
        Name, Source, KeyColumns, Model,
        JsonNode.Parse(Features)?.AsObject() ?? [],
        JsonSerializer.Deserialize<List<OutputColumn>>(Columns, ModelSignature.JsonOptions) ?? [],
        "mad_out." + Name,
        RefreshedAt is { } at ? RowTime.ToOffset(at) : null,
        RefreshedVersion, RowsScored, RowsFailed);
}

internal sealed class JobRow
{
    public long Id { get; set; }
    public string Table { get; set; } = "";
    public string Model { get; set; } = "";
    public int Version { get; set; }
    public string State { get; set; } = "";
    public int TasksDone { get; set; }
    public int TasksTotal { get; set; }
    public long RowsDone { get; set; }
    public long RowsTotal { get; set; }
    public long RowsFailed { get; set; }
    public string? Error { get; set; }
    public string CreatedBy { get; set; } = "";
    public DateTime CreatedAt { get; set; }
    public DateTime? FinishedAt { get; set; }

    public RefreshJob ToJob() => new(Id, Table, Model, Version, State, TasksDone, TasksTotal, RowsDone, RowsTotal, RowsFailed, Error, CreatedBy,
        RowTime.ToOffset(CreatedAt), FinishedAt is { } at ? RowTime.ToOffset(at) : null);
}
