using System.Text.Json.Nodes;
using ModelAsData.Postgres;
using Npgsql;

namespace ModelAsData.Sidecar.Requests;

/// <summary>
/// What the request session's notifications say: requests sent whole (no claim needed), that a claim is needed (a
/// request for this sidecar or for anyone, or one too big to send whole), and that the model references moved. Fed on
/// the session's connection while it reads or waits; read by the session loop between commands.
/// </summary>
internal sealed class RequestInbox(string sidecarId, RequestModels models)
{
    private readonly List<ClaimedRequest> _notified = [];
    private volatile bool _woken;

    /// <summary>Whether anything arrived since <see cref="Reset"/>.</summary>
    public bool Woken => _woken;

    /// <summary>Whether the requests table must be claimed from.</summary>
    public bool ClaimNeeded { get; set; }

    /// <summary>The requests that came whole, since the last take; the inbox keeps none of them.</summary>
    public List<ClaimedRequest> TakeNotified()
    {
        var requests = new List<ClaimedRequest>(_notified);
        _notified.Clear();
        return requests;
    }

    /// <summary>Starts a new wait: <see cref="Woken"/> turns true at the next notification.</summary>
    public void Reset() => _woken = false;

    /// <summary>A new session: nothing from the last one counts.</summary>
    public void Clear() => _notified.Clear();

    public void OnNotification(object sender, NpgsqlNotificationEventArgs e)
    {
        if (e.Channel == Protocol.Channels.Models)
        {
            models.ForgetReferences();
        }
        else if (e.Payload.StartsWith('{'))
        {
            if (Parse(e.Payload) is { } request)
            {
                _notified.Add(request);
                _woken = true;
            }
        }
        else if (e.Payload.Length == 0 || e.Payload == sidecarId)
        {
            ClaimNeeded = true;
            _woken = true;
        }
    }

    /// <summary>A request sent whole in its notification, if it is for this sidecar.</summary>
    private ClaimedRequest? Parse(string payload)
    {
        try
        {
            var json = JsonNode.Parse(payload);
            if (json?["s"]?.GetValue<string>() != sidecarId)
            {
                return null;
            }

            return new ClaimedRequest(json["id"]!.GetValue<long>(), json["k"]!.GetValue<string>(), json["r"]!.GetValue<string>(),
                json["m"]!.GetValue<string>(), json["v"]!.GetValue<int>(), json["f"]!.GetValue<string>());
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException or FormatException or NullReferenceException)
        {
            ClaimNeeded = true; // not ours to read: the table has it
            return null;
        }
    }
}
