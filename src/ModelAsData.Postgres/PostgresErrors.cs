using System.Net.Sockets;
using ModelAsData.Core;
using Npgsql;

namespace ModelAsData.Postgres;

/// <summary>
/// Turns what Npgsql and the server report into a <see cref="ModelAsDataException"/> whose code callers can branch
/// on. Decisions are made on <see cref="PostgresException.SqlState"/> and exception types, never on message text;
/// the <c>mad</c> functions' own messages (and hints) are written for users and are passed on as they are.
/// </summary>
internal static class PostgresErrors
{
    public static bool CanMap(Exception e) => e is NpgsqlException or TimeoutException;

    public static ModelAsDataException Map(Exception e, NpgsqlDataSource dataSource) => Map(e, dataSource.ConnectionString);

    public static ModelAsDataException Map(Exception e, string connectionString)
    {
        if (e is PostgresException pg)
        {
            return FromServer(pg, connectionString);
        }

        var where = Describe(connectionString);
        if (FindSocketError(e) is { } socket)
        {
            var why = socket.SocketErrorCode switch
            {
                SocketError.ConnectionRefused => "connection refused: nothing listens there",
                SocketError.HostNotFound or SocketError.NoData or SocketError.TryAgain => "the host name does not resolve",
                SocketError.TimedOut => "the connection timed out",
                _ => socket.SocketErrorCode.ToString(),
            };
            return new ModelAsDataException(ErrorCode.Database,
                $"Cannot connect to PostgreSQL at {where} ({why}). Start PostgreSQL (e.g. `sudo systemctl start postgresql` or " +
                "`pg_ctlcluster <version> main start`; install it with `apt-get install postgresql`), or point --db / MAD_DB at a reachable server.", e);
        }

        if (e is TimeoutException || e.InnerException is TimeoutException)
        {
            return new ModelAsDataException(ErrorCode.Database,
                $"PostgreSQL at {where} did not answer in time. Check that the server is up and reachable, or raise Timeout in the connection string.", e);
        }

        return new ModelAsDataException(ErrorCode.Database, $"The connection to PostgreSQL at {where} failed: {e.Message}", e);
    }

    private static ModelAsDataException FromServer(PostgresException e, string connectionString)
    {
        var text = e.Hint is { Length: > 0 } hint ? $"{e.MessageText} {hint}" : e.MessageText;
        return e.SqlState switch
        {
            // PostgreSQL's own privilege check (EXECUTE grants are the gate) names the object, not the role that may use it.
            PostgresErrorCodes.InsufficientPrivilege when e.Routine == "aclcheck_error" =>
                new(ErrorCode.PermissionDenied, $"{text}. {MissingRoleHint}", e),
            _ when CodeOf(e.SqlState) is var code && code != ErrorCode.Database => new(code, text, e),
            Protocol.SqlStates.SidecarStopped => new(ErrorCode.Database, text, e),
            PostgresErrorCodes.ActiveSqlTransaction => new(ErrorCode.Conflict, text, e),
            PostgresErrorCodes.InvalidTransactionTermination when e.Routine is not null || e.Where is not null => new(ErrorCode.Conflict,
                $"CALL mad.predict cannot run inside an explicit transaction (or a function): it must commit its request so that a sidecar can see it ({e.MessageText}). " +
                "Call it in autocommit, or use SELECT mad.predict_async(model, features) and LISTEN mad_reply, or the sidecar's HTTP endpoint (`mad serve --http`, POST /v2/models/{name}/infer).", e),
            PostgresErrorCodes.ObjectNotInPrerequisiteState or PostgresErrorCodes.UniqueViolation => new(ErrorCode.Conflict, text, e),
            PostgresErrorCodes.ProgramLimitExceeded => new(ErrorCode.InvalidModel, text, e),
            PostgresErrorCodes.InvalidParameterValue => new(ErrorCode.InvalidArgument, text, e),
            PostgresErrorCodes.InvalidSchemaName or PostgresErrorCodes.UndefinedFunction or PostgresErrorCodes.UndefinedTable =>
                new(ErrorCode.Database, $"The database at {Describe(connectionString)} has no (or an older) ModelAsData schema: run `mad db migrate` first. PostgreSQL said: {e.MessageText}", e),
            PostgresErrorCodes.InvalidCatalogName =>
                new(ErrorCode.Database, $"{e.MessageText} on {Describe(connectionString)}: create it (`createdb <name>`) or fix the Database of --db / MAD_DB.", e),
            PostgresErrorCodes.InvalidPassword or PostgresErrorCodes.InvalidAuthorizationSpecification =>
                new(ErrorCode.PermissionDenied, $"PostgreSQL at {Describe(connectionString)} refused the login: {e.MessageText}. Check the Username and Password of --db / MAD_DB.", e),
            _ => new(ErrorCode.Database, $"PostgreSQL error {e.SqlState}: {text}", e),
        };
    }

    /// <summary>
    /// The error code a SQLSTATE of mad's own functions (and the few of PostgreSQL's they raise) stands for; Database
    /// for any other. Exceptions and an async request's stored answer are judged by this one table.
    /// </summary>
    public static ErrorCode CodeOf(string sqlState) => sqlState switch
    {
        PostgresErrorCodes.InsufficientPrivilege => ErrorCode.PermissionDenied,
        PostgresErrorCodes.InvalidName => ErrorCode.InvalidName,
        PostgresErrorCodes.NoDataFound => ErrorCode.NotFound,
        Protocol.SqlStates.NotReady or Protocol.SqlStates.NoSidecar => ErrorCode.NotReady,
        Protocol.SqlStates.LeaseLost => ErrorCode.Conflict,
        Protocol.SqlStates.FeatureMismatch => ErrorCode.FeatureMismatch,
        Protocol.SqlStates.InvalidModel => ErrorCode.InvalidModel,
        Protocol.SqlStates.Timeout => ErrorCode.Timeout,
        _ => ErrorCode.Database,
    };

    private const string MissingRoleHint =
        "Each ModelAsData role may do its own part: mad_admin (push models, move aliases, create prediction tables), mad_user " +
        "(predict, refresh and watch its own tables) or mad_sidecar (`mad serve`); docs/SECURITY.md lists which role may call each function. " +
        "An administrator can run: GRANT <role> TO <your role>;";

    /// <summary>"host:port/database", for messages; never the password.</summary>
    public static string Describe(string connectionString)
    {
        try
        {
            var builder = PostgresConnectionString.Parse(connectionString);
            return $"{builder.Host ?? "localhost"}:{builder.Port}/{builder.Database ?? builder.Username ?? "(default database)"}";
        }
        catch (ModelAsDataException)
        {
            return "(unreadable connection string)";
        }
    }

    private static SocketException? FindSocketError(Exception? e)
    {
        for (; e is not null; e = e.InnerException)
        {
            if (e is SocketException socket)
            {
                return socket;
            }
        }

        return null;
    }
}
