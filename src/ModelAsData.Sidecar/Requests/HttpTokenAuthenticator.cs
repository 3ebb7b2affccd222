using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Dapper;
using ModelAsData.Core;
using ModelAsData.Postgres;
using Npgsql;

namespace ModelAsData.Sidecar.Requests;

/// <summary>
/// Checks the bearer token of an HTTP request against <c>mad.http_tokens</c> (through <c>mad.check_http_token</c>,
/// by the sha256 of the token's text: the sidecar never stores a token). The answer for a token — its role and
/// whether that role may score, or that the token is unknown — is reused for <see cref="HttpDoorOptions.AuthCacheTime"/>,
/// so a revoked token, a revoked grant or a dropped role stops working within that time, without a restart.
/// Thread-safe.
/// </summary>
public sealed partial class HttpTokenAuthenticator(NpgsqlDataSource dataSource, HttpDoorOptions options)
{
    /// <summary>Beyond this many remembered tokens (a flood of forged ones) the cache starts over.</summary>
    private const int MaxCached = 10_000;

    private readonly ConcurrentDictionary<string, (HttpCaller Caller, long Until)> _cache = new(StringComparer.Ordinal);
    private readonly long _cacheTicks = (long)(options.AuthCacheTime.TotalSeconds * Stopwatch.Frequency);

    /// <summary>
    /// The caller an <c>Authorization</c> header value names. Throws <see cref="ModelAsDataException"/>
    /// (<see cref="ErrorCode.Database"/>) when the database cannot be asked; the door answers 503, never "allowed".
    /// </summary>
    public async ValueTask<HttpCaller> AuthenticateAsync(string? authorization, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(authorization))
        {
            return HttpCaller.Anonymous;
        }

        var value = authorization.Trim();
        if (!value.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return HttpCaller.Anonymous;
        }

        // Anything that is not shaped like a token we issue is refused without asking the database.
        var token = value["Bearer ".Length..].Trim();
        if (!TokenShape().IsMatch(token))
        {
            return HttpCaller.InvalidToken;
        }

        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)));
        var now = Stopwatch.GetTimestamp();
        if (_cacheTicks > 0 && _cache.TryGetValue(hash, out var cached) && cached.Until > now)
        {
            return cached.Caller;
        }

        var caller = await CheckAsync(hash, cancellationToken);
        if (_cacheTicks > 0)
        {
            if (_cache.Count >= MaxCached)
            {
                _cache.Clear();
            }

            _cache[hash] = (caller, now + _cacheTicks);
        }

        return caller;
    }

    /// <summary>How many tokens are live now; throws <see cref="ModelAsDataException"/> saying what to do when tokens cannot be checked at all.</summary>
    public async Task<long> CountLiveTokensAsync(CancellationToken cancellationToken)
    {
        try
        {
            await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
            return await connection.ExecuteScalarAsync<long>(new CommandDefinition(HttpSql.LiveTokens, cancellationToken: cancellationToken));
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UndefinedFunction)
        {
            throw new ModelAsDataException(ErrorCode.Database,
                "The HTTP door needs the token functions of sql/postgres/009_http_tokens.sql, which this database lacks: run `mad db migrate`, then `mad serve --http` again.", e);
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.InsufficientPrivilege)
        {
            throw new ModelAsDataException(ErrorCode.PermissionDenied,
                $"The HTTP door cannot check tokens: the sidecar's login needs role mad_sidecar ({e.MessageText}). An administrator can run: GRANT mad_sidecar TO <the sidecar's login>;", e);
        }
        catch (Exception e) when (PostgresErrors.CanMap(e))
        {
            throw PostgresErrors.Map(e, dataSource);
        }
    }

    private async Task<HttpCaller> CheckAsync(string hash, CancellationToken cancellationToken)
    {
        try
        {
            await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
            var row = await connection.QuerySingleOrDefaultAsync<TokenRow>(new CommandDefinition(HttpSql.CheckToken, new { hash }, cancellationToken: cancellationToken));
            return row is null ? HttpCaller.InvalidToken : new HttpCaller(row.MayScore ? HttpCallerKind.Allowed : HttpCallerKind.Forbidden, row.Label, row.Role);
        }
        catch (Exception e) when (PostgresErrors.CanMap(e))
        {
            throw PostgresErrors.Map(e, dataSource);
        }
    }

    /// <summary>What mad.create_http_token issues: 'mad_' and 64 lower-case hex digits.</summary>
    [GeneratedRegex("^mad_[0-9a-f]{64}$", RegexOptions.CultureInvariant)]
    private static partial Regex TokenShape();

    private sealed class TokenRow
    {
        public string Label { get; set; } = "";

        public string Role { get; set; } = "";

        public bool MayScore { get; set; }
    }
}
