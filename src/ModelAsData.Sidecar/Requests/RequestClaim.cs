using System.Diagnostics;
using Npgsql;
using NpgsqlTypes;

namespace ModelAsData.Sidecar.Requests;

/// <summary>
/// Claims requests from <c>mad.requests</c> on the session's connection: those assigned to this sidecar, and on a
/// scan orphaned ones too; a scan also purges old answered requests, at most once a minute. The claim that follows a
/// batch of answers travels with them (<see cref="RequestAnswers"/>): <see cref="Add"/> and <see cref="ReadAsync"/>.
/// </summary>
internal sealed class RequestClaim : IAsyncDisposable
{
    /// <summary>The most requests one claim takes, and so one answer batch holds.</summary>
    public const int MaxClaim = 256;

    private static readonly TimeSpan PurgeInterval = TimeSpan.FromMinutes(1);

    private readonly NpgsqlCommand _claim;
    private readonly NpgsqlCommand _purge;
    private readonly string _sidecarId;
    private long _purged = Stopwatch.GetTimestamp();

    public RequestClaim(NpgsqlConnection connection, string sidecarId)
    {
        _sidecarId = sidecarId;
        _claim = new NpgsqlCommand(RequestSql.Claim, connection)
        {
            Parameters = { new() { Value = sidecarId }, new() { Value = MaxClaim }, new() { NpgsqlDbType = NpgsqlDbType.Boolean } },
        };
        _purge = new NpgsqlCommand(RequestSql.Purge, connection);
    }

    public async Task<List<ClaimedRequest>> ClaimAsync(bool scan, CancellationToken cancellationToken)
    {
        _claim.Parameters[2].Value = scan;
        List<ClaimedRequest> requests;
        await using (var reader = await _claim.ExecuteReaderAsync(cancellationToken))
        {
            requests = await ReadAsync(reader, cancellationToken);
        }

        if (scan && Stopwatch.GetElapsedTime(_purged) > PurgeInterval)
        {
            await _purge.ExecuteScalarAsync(cancellationToken);
            _purged = Stopwatch.GetTimestamp();
        }

        return requests;
    }

    /// <summary>Adds to a batch the release of <paramref name="ticket"/> and a claim (no scan) of this sidecar's requests.</summary>
    public void AddReleasing(NpgsqlBatch batch, long ticket) =>
        batch.BatchCommands.Add(new NpgsqlBatchCommand(RequestSql.ReleaseAndClaim) { Parameters = { new() { Value = ticket }, new() { Value = _sidecarId }, new() { Value = MaxClaim } } });

    /// <summary>The claimed requests of the reader's current result.</summary>
    public static async Task<List<ClaimedRequest>> ReadAsync(NpgsqlDataReader reader, CancellationToken cancellationToken)
    {
        var requests = new List<ClaimedRequest>();
        while (await reader.ReadAsync(cancellationToken))
        {
            requests.Add(new ClaimedRequest(reader.GetInt64(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetInt32(4), reader.GetString(5),
                reader.IsDBNull(6) ? null : reader.GetInt32(6)));
        }

        return requests;
    }

    public async ValueTask DisposeAsync()
    {
        await _claim.DisposeAsync();
        await _purge.DisposeAsync();
    }
}
