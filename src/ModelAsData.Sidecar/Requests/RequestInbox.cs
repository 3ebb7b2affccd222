using ModelAsData.Postgres;
using Npgsql;

namespace ModelAsData.Sidecar.Requests;

/// <summary>
/// What the request session's notifications say: that a claim is due (a request for this sidecar, or for nobody) and
/// that the model references moved. A notification is a wake-up only: anyone who can connect can NOTIFY, so nothing in
/// a payload is acted on but "look at the table"; a forged one costs one claim that finds nothing. Fed on the
/// session's connection while it reads or waits; read by the session loop between commands.
/// </summary>
internal sealed class RequestInbox(string sidecarId, RequestModels models)
{
    private volatile bool _woken;
    private volatile bool _claimNeeded;

    /// <summary>Whether anything arrived since <see cref="Reset"/>.</summary>
    public bool Woken => _woken;

    /// <summary>Whether a request may be waiting in the table for this sidecar; reading it clears it.</summary>
    public bool TakeClaimNeeded()
    {
        var needed = _claimNeeded;
        _claimNeeded = false;
        return needed;
    }

    /// <summary>Starts a new wait: <see cref="Woken"/> turns true at the next notification.</summary>
    public void Reset() => _woken = false;

    public void OnNotification(object sender, NpgsqlNotificationEventArgs e)
    {
        if (e.Channel == Protocol.Channels.Models)
        {
            models.ForgetReferences();
        }
        else if (e.Payload.Length == 0 || e.Payload == sidecarId)
        {
            _claimNeeded = true;
            _woken = true;
        }
    }
}
