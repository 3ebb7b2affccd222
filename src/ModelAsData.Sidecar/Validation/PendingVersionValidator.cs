using Dapper;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using ModelAsData.Core;
using ModelAsData.Core.Onnx;
using ModelAsData.Core.Registry;
using ModelAsData.Postgres;
using ModelAsData.Postgres.Registry;
using Npgsql;

namespace ModelAsData.Sidecar.Validation;

/// <summary>
/// Validates pending versions: claims one with <c>FOR NO KEY UPDATE SKIP LOCKED</c> (so several sidecars never validate the
/// same version), counts the attempt on a second session (committed before the load, so a sidecar killed while
/// loading has counted it), loads it into ONNX Runtime and, in the claim's transaction, marks it <c>ready</c> with its
/// signature or <c>rejected</c> with ONNX Runtime's reason. A sidecar that dies mid-way rolls back, leaving the version
/// pending for the next; the claim after the last attempt allowed (<c>max_validation_attempts</c>, 2) rejects it with
/// the reason. Thread-safe; does not own the data source.
/// </summary>
public sealed partial class PendingVersionValidator
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly SidecarOptions _options;
    private readonly ILogger _logger;

    public PendingVersionValidator(NpgsqlDataSource dataSource, SidecarOptions options, ILogger<PendingVersionValidator>? logger = null)
    {
        _dataSource = dataSource;
        _options = options;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
    }

    /// <summary>Validates pending versions until none is left unclaimed; returns what it decided, oldest first.</summary>
    public async Task<IReadOnlyList<ValidationOutcome>> ValidatePendingAsync(CancellationToken cancellationToken = default)
    {
        var outcomes = new List<ValidationOutcome>();
        while (await ValidateNextAsync(cancellationToken) is { } outcome)
        {
            outcomes.Add(outcome);
        }

        return outcomes;
    }

    /// <summary>Validates the oldest pending version no other sidecar holds; null when there is none.</summary>
    public async Task<ValidationOutcome?> ValidateNextAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            var claimed = await connection.QuerySingleOrDefaultAsync<ClaimedVersion>(
                new CommandDefinition(SidecarSql.Claim, transaction: transaction, cancellationToken: cancellationToken));
            if (claimed is null)
            {
                await transaction.CommitAsync(cancellationToken);
                return null;
            }

            await CountAttemptAsync(claimed, cancellationToken);
            string? signature = null;
            ValidationOutcome outcome;
            try
            {
                // A large version's chunks (030) are read here on the claim's session into a temporary file, checked
                // against its sha256, and loaded from there by path (no managed copy while ONNX Runtime parses it).
                using var file = claimed.Onnx is null ? await PostgresVersionBytes.ReadToFileAsync(connection, claimed.Model, claimed.Version, cancellationToken) : null;
                claimed.Onnx ??= file is null ? await PostgresVersionBytes.ReadAsync(connection, claimed.Model, claimed.Version, cancellationToken) ?? [] : null;
                outcome = Validate(claimed, file?.Path, out signature);
            }
            catch (ModelAsDataException e) when (e.Code == ErrorCode.InvalidModel)
            {
                outcome = new ValidationOutcome(claimed.Model, claimed.Version, VersionStatus.Rejected, e.Message);
            }
            finally
            {
                claimed.Onnx = null; // A large model's bytes are garbage from here on, while the verdict is written.
            }

            await connection.ExecuteAsync(new CommandDefinition(SidecarSql.Mark, new
            {
                model = claimed.Model,
                version = claimed.Version,
                status = outcome.Status switch { VersionStatus.Ready => "ready", VersionStatus.Rejected => "rejected", _ => "failed" },
                reason = outcome.Reason,
                signature,
                sidecar = _options.SidecarId,
            }, transaction, cancellationToken: cancellationToken));
            await transaction.CommitAsync(cancellationToken);

            if (outcome.Status == VersionStatus.Pending)
            {
                // The database decided whether that was the last attempt allowed: report what it recorded.
                var recorded = await connection.QuerySingleAsync<(string Status, string? Reason)>(new CommandDefinition(SidecarSql.VersionStatus,
                    new { model = claimed.Model, version = claimed.Version }, cancellationToken: cancellationToken));
                LogAttemptFailed(_logger, claimed.Model, claimed.Version, outcome.Reason);
                outcome = recorded.Status == "rejected" ? outcome with { Status = VersionStatus.Rejected, Reason = recorded.Reason } : outcome;
            }
            else if (outcome.Status == VersionStatus.Ready)
            {
                LogReady(_logger, claimed.Model, claimed.Version);
            }
            else
            {
                LogRejected(_logger, claimed.Model, claimed.Version, outcome.Reason);
            }

            return outcome;
        }
        catch (Exception e) when (PostgresErrors.CanMap(e))
        {
            throw PostgresErrors.Map(e, _dataSource);
        }
    }

    /// <summary>Counts this attempt on a session of its own: committed now, whatever becomes of the claim's transaction.</summary>
    private async Task CountAttemptAsync(ClaimedVersion claimed, CancellationToken cancellationToken)
    {
        await using var counting = await _dataSource.OpenConnectionAsync(cancellationToken);
        await counting.ExecuteScalarAsync<int>(new CommandDefinition(SidecarSql.CountAttempt,
            new { model = claimed.Model, version = claimed.Version, sidecar = _options.SidecarId }, cancellationToken: cancellationToken));
    }

    private ValidationOutcome Validate(ClaimedVersion claimed, string? path, out string? signature)
    {
        signature = null;
        try
        {
            using var model = path is null ? OnnxModel.Load(claimed.Onnx ?? [], _options.Scoring) : OnnxModel.LoadFile(path, _options.Scoring);
            signature = model.Signature.ToJson();
            return new ValidationOutcome(claimed.Model, claimed.Version, VersionStatus.Ready, null);
        }
        catch (ModelAsDataException e)
        {
            return new ValidationOutcome(claimed.Model, claimed.Version, VersionStatus.Rejected, e.Message);
        }
        catch (OutOfMemoryException e)
        {
            // No verdict on the model (this process may just be short of memory): the attempt failed, and the
            // database rejects the version once it has failed max_validation_attempts times.
            return new ValidationOutcome(claimed.Model, claimed.Version, VersionStatus.Pending, $"Loading the model ran out of memory: {e.Message}");
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Loading works on the bytes alone: any other failure is about this model, and leaving it pending would
            // make every sidecar retry it for ever.
            return new ValidationOutcome(claimed.Model, claimed.Version, VersionStatus.Rejected, $"The model cannot be read: {e.Message}");
        }
    }

    [LoggerMessage(EventId = Protocol.LogEvents.VersionReady, Level = LogLevel.Information, Message = "Model {Model} v{Version} is ready")]
    private static partial void LogReady(ILogger logger, string model, int version);

    [LoggerMessage(EventId = Protocol.LogEvents.ValidationAttemptFailed, Level = LogLevel.Warning, Message = "Validating model {Model} v{Version} failed without a verdict: {Reason}")]
    private static partial void LogAttemptFailed(ILogger logger, string model, int version, string? reason);

    [LoggerMessage(EventId = Protocol.LogEvents.VersionRejected, Level = LogLevel.Warning, Message = "Model {Model} v{Version} is rejected: {Reason}")]
    private static partial void LogRejected(ILogger logger, string model, int version, string? reason);

    private sealed class ClaimedVersion
    {
        public string Model { get; set; } = "";

        public int Version { get; set; }

        /// <summary>Null for a version stored in chunks.</summary>
        public byte[]? Onnx { get; set; }
    }
}
