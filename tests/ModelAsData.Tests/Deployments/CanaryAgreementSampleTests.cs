using ModelAsData.Core.Deployments;

namespace ModelAsData.Tests.Deployments;

/// <summary>
/// The canary agreement sample (docs/DEPLOYMENTS.md "Canary agreement"): the published hash under the seed XOR the
/// fixed salt. Golden values computed outside .NET: 7 XOR 6364136223846793005 = 6364136223846793002, and
/// `printf '%s' '6364136223846793002:42' | sha256sum | cut -c1-8` gives bc415ac9 = 3158399689 (python's hashlib agrees).
/// </summary>
public sealed class CanaryAgreementSampleTests
{
    [Fact]
    public void The_sample_is_the_sticky_hash_under_the_seed_xor_the_published_salt()
    {
        Assert.Equal(6364136223846793005L, CanaryAgreement.Salt);
        Assert.Equal(3158399689u / 4294967296.0, StickyBucket.Of(7 ^ CanaryAgreement.Salt, "42"));
        // Bucket 0.7354 and 0.4875: in the sample just above them, out of it at or below.
        Assert.True(CanaryAgreement.Samples(7, "42", 74));
        Assert.False(CanaryAgreement.Samples(7, "42", 73));
        Assert.Equal(2093674980u / 4294967296.0, StickyBucket.Of(424242 ^ CanaryAgreement.Salt, "1"));
        Assert.True(CanaryAgreement.Samples(424242, "1", 49));
        Assert.False(CanaryAgreement.Samples(424242, "1", 48));
        Assert.False(CanaryAgreement.Samples(7, "42", 0)); // 0 turns the comparison off
    }

    [Fact]
    public void The_sample_does_not_follow_the_canary_and_raising_its_percent_only_adds_keys()
    {
        var keys = Enumerable.Range(0, 20_000).Select(k => StickyBucket.KeyText((long)k)).ToList();
        var canary = keys.Where(k => StickyBucket.InCanary(99, k, 10)).ToHashSet();
        var sample = keys.Where(k => CanaryAgreement.Samples(99, k, 10)).ToHashSet();
        // Without the salt the sample of a 10 % canary would be the canary itself; with it, ~10 % of the canary's keys.
        var both = canary.Count(sample.Contains);
        var sigma = Math.Sqrt(canary.Count * 0.1 * 0.9);
        Assert.InRange(both, canary.Count * 0.1 - 3 * sigma, canary.Count * 0.1 + 3 * sigma);
        Assert.Subset(keys.Where(k => CanaryAgreement.Samples(99, k, 30)).ToHashSet(), sample);
    }
}
