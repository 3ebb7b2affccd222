using ModelAsData.Core.Deployments;

namespace ModelAsData.Tests.Deployments;

/// <summary>
/// The published hash, against values computed outside .NET: `printf '%s' '7:42' | sha256sum | cut -c1-8` gives
/// 6fb44d7d = 1874087293, and python's hashlib agrees (int.from_bytes(sha256(s.encode()).digest()[:4], 'big')).
/// The same golden values are asserted for mad.bucket (PostgreSQL) and bucket() (SQLite) in the integration tests.
/// </summary>
public sealed class StickyBucketTests
{
    public static TheoryData<long, string, uint> Golden => new()
    {
        { 7, "42", 1874087293u },
        { 7, "alice", 2510606425u },
        { 123456789, "42", 4130055883u },
        { -5, "0", 4262724648u },
        { 7, "42\u001Fnorth", 383116829u },
        { 7, "Zoë", 2693480954u },
    };

    [Theory]
    [MemberData(nameof(Golden))]
    public void The_bucket_is_the_first_four_bytes_of_sha256_big_endian_over_two_to_the_32(long seed, string keyText, uint expected) =>
        Assert.Equal(expected / 4294967296.0, StickyBucket.Of(seed, keyText));

    [Fact]
    public void Canonical_key_text_writes_integers_in_decimal_text_as_is_and_joins_composites_with_the_unit_separator()
    {
        Assert.Equal("42", StickyBucket.KeyText(42L));
        Assert.Equal("-3", StickyBucket.KeyText(-3));
        Assert.Equal("alice", StickyBucket.KeyText("alice"));
        Assert.Equal("42\u001Fnorth", StickyBucket.KeyText(42, "north"));
        Assert.Equal("true", StickyBucket.KeyText(true));
        Assert.Equal("0b5a7e4c-1d2f-4a3b-9c8d-7e6f5a4b3c2d", StickyBucket.KeyText(Guid.Parse("0B5A7E4C-1D2F-4A3B-9C8D-7E6F5A4B3C2D")));
        Assert.Throws<ArgumentException>(() => StickyBucket.KeyText((object?)null));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(10)]
    [InlineData(50)]
    public void The_canary_share_of_100000_keys_is_within_three_sigma_of_the_percent(double percent)
    {
        const int Keys = 100_000;
        var inCanary = Enumerable.Range(1, Keys).Count(k => StickyBucket.InCanary(20261203, StickyBucket.KeyText(k), percent));
        var p = percent / 100;
        var sigma = Math.Sqrt(Keys * p * (1 - p));
        Assert.InRange(inCanary, Keys * p - 3 * sigma, Keys * p + 3 * sigma);
    }

    [Fact]
    public void Raising_the_percent_only_adds_keys()
    {
        var seed = 991L;
        HashSet<int> previous = [];
        foreach (var percent in new[] { 1.0, 5, 25, 50, 99.5, 100 })
        {
            var now = Enumerable.Range(1, 20_000).Where(k => StickyBucket.InCanary(seed, StickyBucket.KeyText(k), percent)).ToHashSet();
            Assert.True(previous.IsSubsetOf(now), $"a key left the canary when it grew to {percent}%");
            previous = now;
        }

        Assert.Equal(20_000, previous.Count);
    }

    [Theory]
    [InlineData(100, true)]
    [InlineData(0, false)]
    public void At_100_and_0_percent_the_answer_skips_the_hash_and_is_what_the_bucket_gives(double percent, bool expected)
    {
        Assert.False(StickyBucket.NeedsHash(percent));
        Assert.True(StickyBucket.NeedsHash(99.999));
        Assert.True(StickyBucket.NeedsHash(0.001));
        foreach (var k in Enumerable.Range(1, 20_000))
        {
            var key = StickyBucket.KeyText(k);
            Assert.Equal(StickyBucket.InCanary(StickyBucket.Of(20261204, key), percent), StickyBucket.InCanary(20261204, key, percent));
            Assert.Equal(expected, StickyBucket.InCanary(20261204, key, percent));
        }
    }
}
