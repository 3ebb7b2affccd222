using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using System.Text.Json;
using ModelAsData.Postgres.Jobs;

namespace ModelAsData.IntegrationTests.Conformance;

/// <summary>
/// A representative set of ONNX's backend node tests through SQL (docs/TENSORS.md): each model is pushed and
/// validated by a real sidecar, bound to a table whose row holds each input tensor in an array column of its element
/// type, refreshed, and the predictions read back from <c>mad_out</c> must be the expected outputs within ONNX's own
/// tolerance. The set: every fourth (by name) of the tests whose tensors fit one row and array columns and that ONNX
/// Runtime itself runs; and every uint64 test (numeric[] columns in, numeric(20,0) / numeric[] out, 053).
/// </summary>
public sealed class NodeTestsThroughSqlTests(PostgresDatabase database) : DatabaseTests(database)
{
    private const int PostgresMaxDimensions = 6;

    [Fact(Timeout = 300_000)]
    public async Task A_representative_set_of_node_tests_passes_through_array_columns_and_a_refresh()
    {
        Microsoft.ML.OnnxRuntime.OrtEnv.Instance().EnvLogLevel = Microsoft.ML.OnnxRuntime.OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR;
        var candidates = NodeTest.LoadAll().Where(t => Fits(t) is { } types && !types.Contains(13)).ToList();
        var chosen = candidates.Where((_, i) => i % 4 == 0).Where(t => t.RunInOnnxRuntime() is null).ToList();
        var (passed, failing) = await PassThroughSqlAsync(chosen, "sqlnode");

        TestContext.Current.SendDiagnosticMessage($"{passed} of {chosen.Count} node tests pass through SQL (of {candidates.Count} that fit array columns).");
        Assert.True(chosen.Count >= 60, $"Only {chosen.Count} node tests were chosen.");
        Assert.True(failing.Count == 0, $"{failing.Count} of {chosen.Count} node tests fail through SQL:\n{string.Join("\n", failing)}");
    }

    [Fact(Timeout = 300_000)]
    public async Task Every_uint64_node_test_passes_through_numeric_array_columns_and_a_refresh_digit_for_digit()
    {
        // Max, Min, Mod, BitShift and Pow on uint64 (053): inputs from numeric[] columns, outputs in numeric(20,0)
        // and numeric[] columns, compared as text, so a value past 2^53 must come back with every digit.
        Microsoft.ML.OnnxRuntime.OrtEnv.Instance().EnvLogLevel = Microsoft.ML.OnnxRuntime.OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR;
        var chosen = NodeTest.LoadAll().Where(t => Fits(t) is { } types && types.Contains(13)).Where(t => t.RunInOnnxRuntime() is null).ToList();

        var (passed, failing) = await PassThroughSqlAsync(chosen, "sqlu64");

        TestContext.Current.SendDiagnosticMessage($"{passed} of {chosen.Count} uint64 node tests pass through SQL.");
        Assert.True(chosen.Count >= 5, $"Only {chosen.Count} uint64 node tests were chosen.");
        Assert.True(failing.Count == 0, $"{failing.Count} of {chosen.Count} uint64 node tests fail through SQL:\n{string.Join("\n", failing)}");
    }

    /// <summary>Pushes, validates, binds and refreshes each test; returns how many passed and what failed.</summary>
    private async Task<(int Passed, List<string> Failing)> PassThroughSqlAsync(List<NodeTest> chosen, string prefix)
    {
        var names = chosen.Select((t, i) => (Test: t, Model: $"{prefix}_{i.ToString("D3", CultureInfo.InvariantCulture)}")).ToList();
        await using (var connection = await Database.DataSource.OpenConnectionAsync(Ct))
        {
            foreach (var (test, model) in names)
            {
                await using var push = new NpgsqlCommand("SELECT mad.push_model($1, $2, '{}')", connection) { Parameters = { new() { Value = model }, new() { Value = test.Model } } };
                await push.ExecuteNonQueryAsync(Ct);
            }
        }

        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        await Eventually.WaitForAsync(
            () => Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.model_versions WHERE status = 'pending'"),
            n => n == 0, "every chosen node test validated", TimeSpan.FromSeconds(120));
        var tables = new PostgresPredictionTables(new PostgresModelRegistry(Database.DataSource), TimeSpan.FromMilliseconds(50));
        var outcomes = new ConcurrentDictionary<string, string?>();
        await Parallel.ForEachAsync(names, new ParallelOptions { MaxDegreeOfParallelism = 3, CancellationToken = Ct }, async (entry, ct) =>
        {
            try
            {
                outcomes[entry.Test.Name] = await RunAsync(tables, entry.Test, entry.Model, ct);
            }
            catch (Exception e) when (e is PostgresException or ModelAsDataException)
            {
                outcomes[entry.Test.Name] = e.Message;
            }
        });

        var failing = outcomes.Where(o => o.Value is not null).Select(o => $"{o.Key}: {o.Value}").Order(StringComparer.Ordinal).ToList();
        return (outcomes.Count - failing.Count, failing);
    }

    /// <summary>The element types of a test whose every tensor is non-empty and of a type an array column holds; null when one is not.</summary>
    private static HashSet<int>? Fits(NodeTest test)
    {
        if (test.NonTensor is not null || test.InputFiles.Count == 0)
        {
            return null;
        }

        var tensors = test.InputFiles.Concat(test.OutputFiles).Select(NodeTensor.Read).ToList();
        return tensors.All(t => SqlType(t.DataType) is not null && t.Count > 0) ? tensors.Select(t => t.DataType).ToHashSet() : null;
    }

    /// <summary>The array column that holds an ONNX element type without loss.</summary>
    private static string? SqlType(int dataType) => dataType switch
    {
        1 or 10 or 16 => "real[]",
        11 => "double precision[]",
        2 or 3 or 5 => "smallint[]",
        4 or 6 => "integer[]",
        7 or 12 => "bigint[]",
        13 => "numeric[]",
        9 => "boolean[]",
        8 => "text[]",
        _ => null,
    };

    /// <summary>Binds, refreshes and compares one test; returns null when it passes, else what differs.</summary>
    private async Task<string?> RunAsync(PostgresPredictionTables tables, NodeTest test, string model, CancellationToken ct)
    {
        var status = await Database.DataSource.ScalarAsync<string>("SELECT status || coalesce(': ' || reason, '') FROM mad.model_versions WHERE model = @model", new { model });
        if (status != "ready")
        {
            return $"not ready ({status})";
        }

        var inputs = test.InputFiles.Select(NodeTensor.Read).ToList();
        var source = $"public.{model}_rows";
        var columns = string.Join(", ", inputs.Select((t, k) => $"in_{k} {SqlType(t.DataType)}"));
        var literals = string.Join(", ", inputs.Select(t => $"'{Literal(t).Replace("'", "''", StringComparison.Ordinal)}'"));
        await Database.DataSource.ExecuteAsync($"CREATE TABLE {source} (id int PRIMARY KEY, {columns}); INSERT INTO {source} VALUES (1, {literals})");
        var features = JsonSerializer.Serialize(test.InputNames.Select((n, k) => (n, k)).ToDictionary(p => p.n, p => $"in_{p.k}"));
        await Database.DataSource.ExecuteAsync("SELECT mad.create_prediction_table(@model, @source::regclass, '{id}', @model, @features::jsonb)", new { model, source, features });
        var result = await tables.RefreshAsync(model, cancellationToken: ct);
        var row = JsonDocument.Parse(await Database.DataSource.ScalarAsync<string>($"SELECT to_jsonb(p)::text FROM mad_out.{model} p")).RootElement;
        if (row.GetProperty("error").GetString() is { } error)
        {
            return $"row error: {error}";
        }

        var decoded = JsonDocument.Parse(await Database.DataSource.ScalarAsync<string>("SELECT columns::text FROM mad.prediction_tables WHERE name = @model", new { model })).RootElement;
        for (var o = 0; o < test.OutputNames.Count; o++)
        {
            var expected = NodeTensor.Read(test.OutputFiles[o]);
            var values = new List<string>();
            foreach (var column in decoded.EnumerateArray().Where(c => c.GetProperty("output").GetInt32() == o).OrderBy(c => c.GetProperty("offset").GetInt32()))
            {
                Flatten(row.GetProperty(column.GetProperty("name").GetString()!), values);
            }

            if (values.Count != expected.Count)
            {
                return $"output '{test.OutputNames[o]}' has {values.Count} value(s) in mad_out; expected {expected}";
            }

            for (var i = 0; i < values.Count; i++)
            {
                // A bool output of one value per row is an integer column (0/1).
                var actual = expected.DataType == 9 && values[i] is "0" or "1" ? (values[i] == "1" ? "true" : "false") : values[i];
                if (!expected.Matches(i, actual))
                {
                    return $"output '{test.OutputNames[o]}' element {i} is {actual}; expected {expected.Element(i)} ({result.Rows} row scored)";
                }
            }
        }

        return null;
    }

    private static void Flatten(JsonElement value, List<string> into)
    {
        if (value.ValueKind == JsonValueKind.Array)
        {
            foreach (var element in value.EnumerateArray())
            {
                Flatten(element, into);
            }

            return;
        }

        into.Add(NodeTensor.Text(value));
    }

    /// <summary>
    /// The tensor as a PostgreSQL array literal of its shape (a scalar as one element); flat beyond PostgreSQL's six
    /// dimensions, as a table holds such a tensor.
    /// </summary>
    private static string Literal(NodeTensor tensor)
    {
        var builder = new StringBuilder();
        long at = 0;
        long[] dims = tensor.Shape.Length == 0 ? [1] : tensor.Shape.Length > PostgresMaxDimensions ? [tensor.Count] : tensor.Shape;
        Nest(builder, tensor, dims, 0, ref at);
        return builder.ToString();
    }

    private static void Nest(StringBuilder builder, NodeTensor tensor, long[] dims, int dim, ref long at)
    {
        if (dim == dims.Length)
        {
            var text = tensor.Element(at++);
            builder.Append(tensor.Strings is not null
                ? "\"" + text.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\""
                : text);
            return;
        }

        builder.Append('{');
        for (var i = 0; i < dims[dim]; i++)
        {
            if (i > 0)
            {
                builder.Append(',');
            }

            Nest(builder, tensor, dims, dim + 1, ref at);
        }

        builder.Append('}');
    }
}
