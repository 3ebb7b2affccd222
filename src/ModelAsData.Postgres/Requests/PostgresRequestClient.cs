using System.Text.Json.Nodes;
using ModelAsData.Core;
using Npgsql;
using NpgsqlTypes;

namespace ModelAsData.Postgres.Requests;

/// <summary>
/// Online predictions through the database, as an application would ask for them. <see cref="CallAsync"/> runs
/// <c>CALL mad.predict</c> (one round trip; the procedure waits for the sidecar). <see cref="PredictAsync"/> shows the
/// asynchronous pattern end to end: <c>SELECT mad.predict_async(...)</c>, then wait for the answer with
/// <c>mad.await_request</c> in another transaction (no LISTEN: it works through PgBouncer). Both answers are logged
/// by the sidecar in <c>mad.prediction_log</c>. Thread-safe; does not own the data source.
/// </summary>
public sealed class PostgresRequestClient
{
    private readonly NpgsqlDataSource _dataSource;

    public PostgresRequestClient(NpgsqlDataSource dataSource)
    {
        _dataSource = dataSource;
    }

    /// <summary><c>CALL mad.predict(reference, features, NULL)</c>: the decoded outputs plus <c>model</c> and <c>version</c>.</summary>
    public async Task<JsonObject> CallAsync(string reference, string featuresJson, CancellationToken cancellationToken = default)
    {
        try
        {
            await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
            await using var command = new NpgsqlCommand("CALL mad.predict($1, $2::jsonb, NULL)", connection)
            {
                Parameters = { new() { Value = reference }, new() { Value = featuresJson } },
            };
            var result = (string)(await command.ExecuteScalarAsync(cancellationToken))!;
            return ModelFirst(result);
        }
        catch (Exception e) when (PostgresErrors.CanMap(e))
        {
            throw PostgresErrors.Map(e, _dataSource);
        }
    }

    /// <summary>
    /// <c>mad.predict_async</c>, then <c>mad.await_request</c> in a transaction of its own: waits for the answer up to
    /// <paramref name="timeout"/> without polling and without LISTEN, so it works through a transaction-mode pooler
    /// (the request itself stays in <c>mad.requests</c> and is answered when a sidecar runs, or expires).
    /// </summary>
    public async Task<JsonObject> PredictAsync(string reference, string featuresJson, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        long id;
        try
        {
            await using (var connection = await _dataSource.OpenConnectionAsync(cancellationToken))
            await using (var submit = new NpgsqlCommand("SELECT mad.predict_async($1, $2::jsonb)", connection)
            {
                Parameters = { new() { Value = reference }, new() { Value = featuresJson, NpgsqlDbType = NpgsqlDbType.Text } },
            })
            {
                id = (long)(await submit.ExecuteScalarAsync(cancellationToken))!;
            }
        }
        catch (Exception e) when (PostgresErrors.CanMap(e))
        {
            throw PostgresErrors.Map(e, _dataSource);
        }

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            await using var connection = await _dataSource.OpenConnectionAsync(deadline.Token);
            await using var wait = new NpgsqlCommand("SELECT status, result::text, error, error_code FROM mad.await_request($1)", connection)
            {
                Parameters = { new() { Value = id } },
                CommandTimeout = 0,
            };
            await using var reader = await wait.ExecuteReaderAsync(deadline.Token);
            await reader.ReadAsync(deadline.Token);
            return Answer(reader, id)!;
        }
        catch (Exception e) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested && e is OperationCanceledException or NpgsqlException)
        {
            throw new ModelAsDataException(ErrorCode.Timeout,
                $"Request {id} for {reference} was not answered within {timeout.TotalSeconds:0.#} s. Is a sidecar running (`mad serve`)? The request stays in mad.requests and is answered when one starts, or expires.");
        }
        catch (Exception e) when (PostgresErrors.CanMap(e))
        {
            throw PostgresErrors.Map(e, _dataSource);
        }
    }

    /// <summary>The answer in the reader's row (status, result, error, error_code): null while it waits; a failed or expired one throws its error.</summary>
    private static JsonObject? Answer(NpgsqlDataReader reader, long id)
    {
        var status = reader.GetString(0);
        return status switch
        {
            "done" => ModelFirst(reader.GetString(1)),
            "failed" or "expired" => throw new ModelAsDataException(
                reader.IsDBNull(3) ? ErrorCode.Database : PostgresErrors.CodeOf(reader.GetString(3)), reader.IsDBNull(2) ? $"Request {id} {status}." : reader.GetString(2)),
            _ => null,
        };
    }

    /// <summary>jsonb orders keys by length; answers read best with the model and version first, as the sidecar wrote them.</summary>
    private static JsonObject ModelFirst(string json)
    {
        var parsed = (JsonObject)JsonNode.Parse(json)!;
        var ordered = new JsonObject { ["model"] = parsed["model"]?.DeepClone(), ["version"] = parsed["version"]?.DeepClone() };
        foreach (var (key, value) in parsed.Where(p => p.Key is not "model" and not "version"))
        {
            ordered[key] = value?.DeepClone();
        }

        return ordered;
    }
}
