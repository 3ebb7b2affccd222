using ModelAsData.Sidecar.Streaming;
using ModelAsData.Sidecar;

namespace ModelAsData.Tests.Sidecar;

/// <summary>The small state the sidecar's workers keep between batches.</summary>
public sealed class SidecarBookkeepingTests
{
    [Fact]
    public async Task Drain_rate_is_keys_per_second_over_a_window()
    {
        var rate = new DrainRate();
        rate.Add(100);
        Assert.Equal(0, rate.PerSecond); // no window has ended yet

        await Task.Delay(300, TestContext.Current.CancellationToken);
        rate.Add(50);

        Assert.InRange(rate.PerSecond, 150 / 5.0, 150 / 0.25); // 150 keys over at least a quarter second (and, however slow the machine, not 5 s)
    }

    [Fact]
    public void A_failed_table_waits_for_its_pause_and_a_success_clears_its_error()
    {
        var state = new StreamTableState();
        Assert.True(state.MayRetry);

        state.Failed("column petal_width does not exist", TimeSpan.FromMinutes(1));
        Assert.False(state.MayRetry);
        Assert.Equal(1, state.Failures);

        state.Failed("again", TimeSpan.Zero);
        Assert.True(state.MayRetry);
        Assert.Equal(2, state.Failures);

        state.Succeeded();
        Assert.Null(state.Error);
        Assert.Equal(0, state.Failures);
    }
}
