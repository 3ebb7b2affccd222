namespace ModelAsData.Tests.Cli;

/// <summary><c>mad bench --section image</c> runs end to end on a few images, and a section asked of the wrong store says which store it needs.</summary>
[Collection(CliCollection.Name)]
public sealed class ImageBenchTests
{
    [Fact]
    public async Task The_image_section_scores_both_cnns_beside_raw_onnx_runtime()
    {
        var result = await MadRunner.RunAsync("bench", "--section", "image", "--rows", "300", "--rounds", "1", "--markdown");

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("| tables refresh: logits | ", result.Output);
        Assert.Contains("| tables refresh: logits + feature map | ", result.Output);
        Assert.Contains("| raw ONNX Runtime: logits + feature map | ", result.Output);
        Assert.DoesNotContain("error", result.Output, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task A_postgres_section_on_the_embedded_store_says_to_give_a_postgres_db()
    {
        var result = await MadRunner.RunAsync("bench", "--section", "online");

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("The online section needs a PostgreSQL store: give --db", result.Output);
    }

    [Fact]
    public async Task The_image_section_against_postgres_says_it_runs_on_the_embedded_store()
    {
        var result = await MadRunner.RunAsync("bench", "--section", "image", "--db", "Host=127.0.0.1;Port=1;Database=none");

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("The image section runs on the embedded store: leave out --db", result.Output);
    }
}
