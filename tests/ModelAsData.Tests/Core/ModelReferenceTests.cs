using ModelAsData.Core;

namespace ModelAsData.Tests.Core;

public sealed class ModelReferenceTests
{
    [Fact]
    public void Bare_name_has_neither_alias_nor_version()
    {
        var reference = ModelReference.Parse("iris");
        Assert.Equal(new ModelReference("iris", null, null), reference);
        Assert.Equal("iris", reference.ToString());
    }

    [Fact]
    public void Name_at_alias_names_the_alias()
    {
        var reference = ModelReference.Parse("churn_v2@production");
        Assert.Equal(new ModelReference("churn_v2", "production", null), reference);
        Assert.Equal("churn_v2@production", reference.ToString());
    }

    [Theory]
    [InlineData("iris@7", 7)]
    [InlineData("iris@1", 1)]
    [InlineData("iris@007", 7)]
    [InlineData("iris@123456", 123456)]
    [InlineData("iris@0", 0)]
    public void Name_at_number_names_a_version(string text, int version)
    {
        var reference = ModelReference.Parse(text);
        Assert.Equal(new ModelReference("iris", null, version), reference);
        Assert.Equal($"iris@{version}", reference.ToString());
    }

    [Theory]
    [InlineData("")]
    [InlineData(null)]
    public void Empty_reference_is_refused_with_the_forms_that_work(string? text)
    {
        var e = Assert.Throws<ModelAsDataException>(() => ModelReference.Parse(text));
        Assert.Equal(ErrorCode.InvalidName, e.Code);
        Assert.Contains("'name', 'name@alias' or 'name@version'", e.Message);
    }

    [Theory]
    [InlineData("Iris", "model", "Iris")]
    [InlineData("9iris", "model", "9iris")]
    [InlineData("ir-is", "model", "ir-is")]
    [InlineData("iris ", "model", "iris ")]
    [InlineData("@production", "model", "")]
    [InlineData("iris@", "alias", "")]
    [InlineData("   ", "model", "   ")]
    [InlineData("iris@1234567890", "alias", "1234567890")]
    [InlineData("iris@-1", "alias", "-1")]
    [InlineData("iris@Prod", "alias", "Prod")]
    [InlineData("iris@a@b", "alias", "a@b")]
    public void Invalid_names_are_refused_naming_the_part_and_the_rule(string text, string part, string bad)
    {
        var e = Assert.Throws<ModelAsDataException>(() => ModelReference.Parse(text));
        Assert.Equal(ErrorCode.InvalidName, e.Code);
        Assert.Contains($"Invalid {part} name '{bad}'", e.Message);
        Assert.Contains("lower-case letters, digits and '_'", e.Message);
    }

    [Theory]
    [InlineData("iris; DROP TABLE x")]
    [InlineData("iris'; DROP TABLE mad_models; --")]
    [InlineData("a\"b")]
    [InlineData("iris@prod; DELETE FROM mad_aliases")]
    [InlineData("iris@\"production\"")]
    [InlineData("iris\n")]
    [InlineData("iris/*x*/")]
    public void Injection_like_names_are_refused(string text)
    {
        var e = Assert.Throws<ModelAsDataException>(() => ModelReference.Parse(text));
        Assert.Equal(ErrorCode.InvalidName, e.Code);
        Assert.StartsWith("Invalid ", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Names_longer_than_postgres_keeps_are_refused()
    {
        var longest = new string('a', Names.MaxLength);
        Assert.Equal(longest, ModelReference.Parse(longest).Model);
        var e = Assert.Throws<ModelAsDataException>(() => ModelReference.Parse(longest + "a"));
        Assert.Contains("at most 63 characters", e.Message);
    }

    [Fact]
    public void Underscore_may_start_a_name()
    {
        Assert.Equal(new ModelReference("_tmp", "_canary", null), ModelReference.Parse("_tmp@_canary"));
    }
}
