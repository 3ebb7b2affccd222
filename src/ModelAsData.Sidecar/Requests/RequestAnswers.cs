using Npgsql;

namespace ModelAsData.Sidecar.Requests;

/// <summary>
/// Writes a batch of answers and moves the session's <em>ticket</em> (an advisory lock the connection always holds):
/// answering takes a new ticket and releases the old one, which is what wakes the procedures waiting for their answer.
/// The next claim travels in the same round trip, so a busy worker spends one round trip per batch.
/// </summary>
internal sealed class RequestAnswers
{
    private readonly NpgsqlConnection _connection;
    private readonly string _sidecarId;
    private readonly RequestScorer _scorer;
    private readonly RequestClaim _claim;
    private long _ticket;

    private RequestAnswers(NpgsqlConnection connection, string sidecarId, RequestScorer scorer, RequestClaim claim, long ticket)
    {
        _connection = connection;
        _sidecarId = sidecarId;
        _scorer = scorer;
        _claim = claim;
        _ticket = ticket;
    }

    /// <summary>Takes this session's life lock and first ticket (<c>RequestSql.Arm</c>): from now on waiters can count on it.</summary>
    public static async Task<RequestAnswers> ArmAsync(NpgsqlConnection connection, string sidecarId, RequestScorer scorer, RequestClaim claim, CancellationToken cancellationToken)
    {
        await using var arm = new NpgsqlCommand(RequestSql.Arm, connection) { Parameters = { new() { Value = sidecarId } } };
        var ticket = (long)(await arm.ExecuteScalarAsync(cancellationToken))!;
        return new RequestAnswers(connection, sidecarId, scorer, claim, ticket);
    }

    /// <summary>Scores the requests (a batched call per model version), writes the answers and claims the next requests.</summary>
    public async Task<List<ClaimedRequest>> AnswerAsync(List<ClaimedRequest> requests, CancellationToken cancellationToken)
    {
        var answers = await _scorer.ScoreAsync(requests, cancellationToken);

        // One round trip, two transactions: the answers and the new ticket commit, then the old ticket is released
        // (releasing it before the commit would wake waiters who cannot see their answer yet) and the next claim
        // taken, in one statement (057_1).
        await using var batch = new NpgsqlBatch(_connection) { EnableErrorBarriers = true };
        batch.BatchCommands.Add(new NpgsqlBatchCommand(RequestSql.Answer) { Parameters = { new() { Value = _sidecarId }, new() { Value = answers.ToJsonString() } } });
        _claim.AddReleasing(batch, _ticket);
        await using var reader = await batch.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        _ticket = reader.GetInt64(0);
        // 025: the answers are committed and their waiters woken; the shadow scores them after, off their path.
        _scorer.QueueShadows(requests);
        await reader.NextResultAsync(cancellationToken);
        return await RequestClaim.ReadAsync(reader, cancellationToken);
    }
}
