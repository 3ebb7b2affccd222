using System.Text.RegularExpressions;

namespace ModelAsData.Core;

/// <summary>Validation of the names users give to models, aliases and prediction tables.</summary>
public static partial class Names
{
    /// <summary>The longest identifier PostgreSQL keeps without truncating it.</summary>
    public const int MaxLength = 63;

    // \z, not $: $ also matches before a final newline, which would let "iris\n" through.
    [GeneratedRegex(@"^[a-z_][a-z0-9_]*\z")]
    private static partial Regex IdentifierPattern();

    public static bool IsValid(string? name) =>
        !string.IsNullOrEmpty(name) && name.Length <= MaxLength && IdentifierPattern().IsMatch(name);

    /// <summary>Returns <paramref name="name"/> when it is a lower-case identifier, else throws a message that says what is allowed.</summary>
    public static string Validate(string? name, string what)
    {
        if (IsValid(name))
        {
            return name!;
        }

        throw new ModelAsDataException(ErrorCode.InvalidName,
            $"Invalid {what} name '{name}': use lower-case letters, digits and '_', starting with a letter or '_', at most {MaxLength} characters.");
    }
}
