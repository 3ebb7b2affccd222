using System.Globalization;

namespace ModelAsData.Core;

/// <summary>
/// A reference to a model version as users write it: <c>churn</c> (the <c>production</c> alias if it exists, else the
/// newest ready version), <c>churn@staging</c> (an alias) or <c>churn@7</c> (version 7).
/// </summary>
public sealed record ModelReference(string Model, string? Alias, int? Version)
{
    /// <summary>The alias a bare model name means when it exists.</summary>
    public const string DefaultAlias = "production";

    public static ModelReference Parse(string? text)
    {
        if (string.IsNullOrEmpty(text))
        {
            throw new ModelAsDataException(ErrorCode.InvalidName, "A model reference is empty: write 'name', 'name@alias' or 'name@version'.");
        }

        var at = text.IndexOf('@', StringComparison.Ordinal);
        if (at < 0)
        {
            return new ModelReference(Names.Validate(text, "model"), null, null);
        }

        var model = Names.Validate(text[..at], "model");
        var target = text[(at + 1)..];
        // As PostgreSQL's mad.resolve ('^[0-9]{1,9}$'): one to nine digits are a version number, so '@0' is "no version 0".
        if (target.Length is >= 1 and <= 9 && target.All(char.IsAsciiDigit))
        {
            return new ModelReference(model, null, int.Parse(target, NumberStyles.None, CultureInfo.InvariantCulture));
        }

        return new ModelReference(model, Names.Validate(target, "alias"), null);
    }

    public override string ToString() =>
        Version is { } v ? $"{Model}@{v}" : Alias is { } a ? $"{Model}@{a}" : Model;
}
