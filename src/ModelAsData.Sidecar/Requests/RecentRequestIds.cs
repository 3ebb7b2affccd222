namespace ModelAsData.Sidecar.Requests;

/// <summary>
/// The ids of the last requests this worker answered. A request assigned to this sidecar can reach it twice: whole in
/// its notification, and from a claim that ran before the notification was read (PostgreSQL delivers notifications
/// between commands, so one may arrive after the answer committed). Scoring it twice would log the prediction twice.
/// </summary>
internal sealed class RecentRequestIds(int capacity)
{
    private readonly HashSet<long> _ids = [];
    private readonly Queue<long> _order = new();

    public bool Contains(long id) => _ids.Contains(id);

    public void Add(long id)
    {
        if (!_ids.Add(id))
        {
            return;
        }

        _order.Enqueue(id);
        if (_order.Count > capacity)
        {
            _ids.Remove(_order.Dequeue());
        }
    }

    public void Clear()
    {
        _ids.Clear();
        _order.Clear();
    }
}
