using System.Text.Json.Nodes;
using Npgsql;

namespace ModelAsData.Sidecar.Requests;

/// <summary>
/// Writes a batch of answers and moves the session's <em>ticket</em> (an advisory lock the connection always holds):
/// answering takes a new ticket and releases the old one, which is what wakes the procedures waiting for their answer.
/// </summary>
internal sealed class RequestAnswers
{
    private readonly NpgsqlConnection _connection;
    private readonly string _sidecarId;
    private readonly RequestScorer _scorer;
    private long _ticket;

    private RequestAnswers(NpgsqlConnection connection, string sidecarId, RequestScorer scorer, long ticket)
    {
        _connection = connection;
        _sidecarId = sidecarId;
        _scorer = scorer;
        _ticket = ticket;
    }

    /// <summary>Takes this session's first ticket (<c>RequestSql.Arm</c>): from now on waiters can count on it.</summary>
    public static async Task<RequestAnswers> ArmAsync(NpgsqlConnection connection, string sidecarId, RequestScorer scorer, CancellationToken cancellationToken)
    {
        await using var arm = new NpgsqlCommand(RequestSql.Arm, connection) { Parameters = { new() { Value = sidecarId } } };
        var ticket = (long)(await arm.ExecuteScalarAsync(cancellationToken))!;
        return new RequestAnswers(connection, sidecarId, scorer, ticket);
    }

    /// <summary>Scores every request and writes the answers.</summary>
    public async Task AnswerAsync(List<ClaimedRequest> requests, CancellationToken cancellationToken)
    {
        var answers = new JsonArray();
        foreach (var request in requests)
        {
            answers.Add(await _scorer.ScoreAsync(request, cancellationToken));
        }

        // One round trip, two transactions: the answers and the new ticket commit, then the old ticket is released
        // (releasing it before the commit would wake waiters who cannot see their answer yet).
        await using var batch = new NpgsqlBatch(_connection) { EnableErrorBarriers = true };
        batch.BatchCommands.Add(new NpgsqlBatchCommand(RequestSql.Answer) { Parameters = { new() { Value = _sidecarId }, new() { Value = answers.ToJsonString() } } });
        batch.BatchCommands.Add(new NpgsqlBatchCommand(RequestSql.Release) { Parameters = { new() { Value = _ticket } } });
        await using var reader = await batch.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        var next = reader.GetInt64(0);
        while (await reader.NextResultAsync(cancellationToken))
        {
        }

        _ticket = next;
    }
}
