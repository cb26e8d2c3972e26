//! The reference's answer normalisation (`src/utils/glossary.py: normalize_word`), rule for rule,
//! quirks included: the VQA answer vocabulary and the `_fix` tables depend on every one of them.
//!
//! 1. Punctuation: for each of `; / [ ] " { } ( ) = + \ _ - > < @ ` , ? !` in that order, the
//!    mark is deleted when the *original* answer has it next to a space (`"p "` or `" p"`) or
//!    contains a digit-comma-digit (then every mark is deleted), and replaced by a space
//!    otherwise.
//! 2. Periods not followed by a (Unicode) decimal digit are deleted, at most 32 of them: the
//!    reference passes `re.UNICODE` (32) as `re.sub`'s positional *count*.
//! 3. Lower case, split on (Python's) whitespace, number words `none zero one ... ten` to digits
//!    (`none` is `0`), then the articles `a an the` dropped (after the mapping), then the
//!    contraction table per word, joined by single spaces, commas removed.

use std::collections::HashMap;
use std::sync::OnceLock;

const PUNCT: [char; 21] = [
    ';', '/', '[', ']', '"', '{', '}', '(', ')', '=', '+', '\\', '_', '-', '>', '<', '@', '`', ',',
    '?', '!',
];

/// Removed periods at most (`re.UNICODE` read as `count`).
const PERIOD_COUNT: usize = 32;

const NUMBER_WORDS: [(&str, &str); 12] = [
    ("none", "0"),
    ("zero", "0"),
    ("one", "1"),
    ("two", "2"),
    ("three", "3"),
    ("four", "4"),
    ("five", "5"),
    ("six", "6"),
    ("seven", "7"),
    ("eight", "8"),
    ("nine", "9"),
    ("ten", "10"),
];

const ARTICLES: [&str; 3] = ["a", "an", "the"];

/// The contraction table (entries with capitals can never match: words are lower-cased first).
const CONTRACTIONS: [(&str, &str); 120] = [
    ("aint", "ain't"),
    ("arent", "aren't"),
    ("cant", "can't"),
    ("couldve", "could've"),
    ("couldnt", "couldn't"),
    ("couldn'tve", "couldn't've"),
    ("couldnt've", "couldn't've"),
    ("didnt", "didn't"),
    ("doesnt", "doesn't"),
    ("dont", "don't"),
    ("hadnt", "hadn't"),
    ("hadnt've", "hadn't've"),
    ("hadn'tve", "hadn't've"),
    ("hasnt", "hasn't"),
    ("havent", "haven't"),
    ("hed", "he'd"),
    ("hed've", "he'd've"),
    ("he'dve", "he'd've"),
    ("hes", "he's"),
    ("howd", "how'd"),
    ("howll", "how'll"),
    ("hows", "how's"),
    ("Id've", "I'd've"),
    ("I'dve", "I'd've"),
    ("Im", "I'm"),
    ("Ive", "I've"),
    ("isnt", "isn't"),
    ("itd", "it'd"),
    ("itd've", "it'd've"),
    ("it'dve", "it'd've"),
    ("itll", "it'll"),
    ("let's", "let's"),
    ("maam", "ma'am"),
    ("mightnt", "mightn't"),
    ("mightnt've", "mightn't've"),
    ("mightn'tve", "mightn't've"),
    ("mightve", "might've"),
    ("mustnt", "mustn't"),
    ("mustve", "must've"),
    ("neednt", "needn't"),
    ("notve", "not've"),
    ("oclock", "o'clock"),
    ("oughtnt", "oughtn't"),
    ("ow's'at", "'ow's'at"),
    ("'ows'at", "'ow's'at"),
    ("'ow'sat", "'ow's'at"),
    ("shant", "shan't"),
    ("shed've", "she'd've"),
    ("she'dve", "she'd've"),
    ("she's", "she's"),
    ("shouldve", "should've"),
    ("shouldnt", "shouldn't"),
    ("shouldnt've", "shouldn't've"),
    ("shouldn'tve", "shouldn't've"),
    ("somebody'd", "somebodyd"),
    ("somebodyd've", "somebody'd've"),
    ("somebody'dve", "somebody'd've"),
    ("somebodyll", "somebody'll"),
    ("somebodys", "somebody's"),
    ("someoned", "someone'd"),
    ("someoned've", "someone'd've"),
    ("someone'dve", "someone'd've"),
    ("someonell", "someone'll"),
    ("someones", "someone's"),
    ("somethingd", "something'd"),
    ("somethingd've", "something'd've"),
    ("something'dve", "something'd've"),
    ("somethingll", "something'll"),
    ("thats", "that's"),
    ("thered", "there'd"),
    ("thered've", "there'd've"),
    ("there'dve", "there'd've"),
    ("therere", "there're"),
    ("theres", "there's"),
    ("theyd", "they'd"),
    ("theyd've", "they'd've"),
    ("they'dve", "they'd've"),
    ("theyll", "they'll"),
    ("theyre", "they're"),
    ("theyve", "they've"),
    ("twas", "'twas"),
    ("wasnt", "wasn't"),
    ("wed've", "we'd've"),
    ("we'dve", "we'd've"),
    ("weve", "we've"),
    ("werent", "weren't"),
    ("whatll", "what'll"),
    ("whatre", "what're"),
    ("whats", "what's"),
    ("whatve", "what've"),
    ("whens", "when's"),
    ("whered", "where'd"),
    ("wheres", "where's"),
    ("whereve", "where've"),
    ("whod", "who'd"),
    ("whod've", "who'd've"),
    ("who'dve", "who'd've"),
    ("wholl", "who'll"),
    ("whos", "who's"),
    ("whove", "who've"),
    ("whyll", "why'll"),
    ("whyre", "why're"),
    ("whys", "why's"),
    ("wont", "won't"),
    ("wouldve", "would've"),
    ("wouldnt", "wouldn't"),
    ("wouldnt've", "wouldn't've"),
    ("wouldn'tve", "wouldn't've"),
    ("yall", "y'all"),
    ("yall'll", "y'all'll"),
    ("y'allll", "y'all'll"),
    ("yall'd've", "y'all'd've"),
    ("y'alld've", "y'all'd've"),
    ("y'all'dve", "y'all'd've"),
    ("youd", "you'd"),
    ("youd've", "you'd've"),
    ("you'dve", "you'd've"),
    ("youll", "you'll"),
    ("youre", "you're"),
    ("youve", "you've"),
];

fn contractions() -> &'static HashMap<&'static str, &'static str> {
    static MAP: OnceLock<HashMap<&'static str, &'static str>> = OnceLock::new();
    MAP.get_or_init(|| CONTRACTIONS.into_iter().collect())
}

/// Python's `\d` in a `str` pattern: a Unicode decimal digit (category Nd).
fn is_decimal(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_digit();
    }
    static ND: OnceLock<regex::Regex> = OnceLock::new();
    let nd = ND.get_or_init(|| regex::Regex::new(r"^\d$").expect("a valid pattern"));
    let mut buf = [0u8; 4];
    nd.is_match(c.encode_utf8(&mut buf))
}

/// Python's `str.isspace` (what `str.split()` splits on): Rust's White_Space plus the
/// information separators U+001C..U+001F.
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `re.search(r"(\d)(,)(\d)", token)`.
fn has_digit_comma_digit(token: &str) -> bool {
    let chars: Vec<char> = token.chars().collect();
    chars
        .windows(3)
        .any(|w| w[1] == ',' && is_decimal(w[0]) && is_decimal(w[2]))
}

/// `period_strip.sub("", token, 32)`: the lookahead reads the string before any removal.
fn strip_periods(token: &str) -> String {
    let mut out = String::with_capacity(token.len());
    let mut removed = 0;
    let mut chars = token.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '.' && removed < PERIOD_COUNT && !chars.peek().is_some_and(|&n| is_decimal(n)) {
            removed += 1;
            continue;
        }
        out.push(c);
    }
    out
}

/// `glossary.normalize_word`.
pub fn normalize_word(token: &str) -> String {
    let strip_all = has_digit_comma_digit(token);
    let mut text = token.to_string();
    for p in PUNCT {
        let (before, after) = (format!("{p} "), format!(" {p}"));
        if strip_all || token.contains(&before) || token.contains(&after) {
            text = text.replace(p, "");
        } else {
            text = text.replace(p, " ");
        }
    }
    let text = strip_periods(&text).to_lowercase();
    let words: Vec<&str> = text
        .split(is_py_space)
        .filter(|w| !w.is_empty())
        .map(|w| {
            NUMBER_WORDS
                .iter()
                .find(|(word, _)| *word == w)
                .map_or(w, |(_, digit)| digit)
        })
        .filter(|w| !ARTICLES.contains(w))
        .map(|w| contractions().get(w).copied().unwrap_or(w))
        .collect();
    words.join(" ").replace(',', "")
}

#[cfg(test)]
mod tests {
    use super::normalize_word as n;

    #[test]
    fn number_words_become_digits_and_articles_go() {
        assert_eq!(n("Two"), "2");
        assert_eq!(n("none"), "0");
        assert_eq!(n("ten dogs"), "10 dogs");
        assert_eq!(n("eleven"), "eleven");
        assert_eq!(n("A dog"), "dog");
        assert_eq!(n("the  an a"), "");
        // The mapping comes first: "none" is not an article, and a mapped word is not dropped.
        assert_eq!(n("the one"), "1");
    }

    #[test]
    fn contractions_are_restored_per_word() {
        assert_eq!(n("dont know"), "don't know");
        assert_eq!(n("Isnt it"), "isn't it");
        assert_eq!(n("somebody'd"), "somebodyd");
        // Capitalised keys never match: the words are lower-cased first.
        assert_eq!(n("Im"), "im");
        assert_eq!(n("cant've"), "cant've");
    }

    #[test]
    fn punctuation_next_to_a_space_is_deleted_otherwise_spaced() {
        assert_eq!(n("black-and-white"), "black and white");
        assert_eq!(n("yes !"), "yes");
        assert_eq!(n("t-shirt (red)"), "t shirt red");
        // "( " makes parentheses deleted; the hyphen has no space next to it: spaced.
        assert_eq!(n("( t-shirt"), "t shirt");
        assert_eq!(n("red/white"), "red white");
        assert_eq!(n("yes, sir"), "yes sir");
        assert_eq!(n("yes,sir"), "yes sir");
        assert_eq!(n("a\\b"), "b");
    }

    #[test]
    fn a_digit_comma_digit_deletes_every_mark() {
        assert_eq!(n("1,000"), "1000");
        assert_eq!(n("1,000-2"), "10002");
        assert_eq!(n("a-b 1,2"), "ab 12");
    }

    #[test]
    fn periods_before_digits_stay_at_most_32_go() {
        assert_eq!(n("2.5"), "2.5");
        assert_eq!(n("yes."), "yes");
        assert_eq!(n("mr. t"), "mr t");
        assert_eq!(n("..5"), ".5");
        let many = ".".repeat(40);
        assert_eq!(n(&format!("a{many}b")), format!("a{}b", ".".repeat(8)));
    }

    #[test]
    fn whitespace_is_pythons() {
        assert_eq!(n("  red \t\n blue "), "red blue");
        assert_eq!(n("red\u{1f}blue"), "red blue");
        assert_eq!(n("red\u{a0}blue"), "red blue");
    }
}
