# Captions for text/testdata/clip_golden.json (scripts/clip_golden.py):
# Multi-Modal-CelebA-HQ-style face captions from templates, then edge cases.
import random

def face_captions(n, seed=7):
    rng = random.Random(seed)
    who = [("woman", "She", "her"), ("man", "He", "his"), ("person", "They", "their"), ("lady", "She", "her"), ("gentleman", "He", "his")]
    has = ["arched eyebrows", "bushy eyebrows", "wavy hair", "straight hair", "black hair", "blond hair", "brown hair",
           "gray hair", "bangs", "a receding hairline", "bags under eyes", "big lips", "a big nose", "a pointy nose",
           "high cheekbones", "rosy cheeks", "an oval face", "a double chin", "a goatee", "a mustache", "no beard",
           "sideburns", "a 5 o'clock shadow", "narrow eyes", "pale skin", "heavy makeup", "mouth slightly open"]
    is_ = ["smiling", "young", "attractive", "chubby", "bald", "wearing lipstick", "wearing earrings", "wearing a hat",
           "wearing a necklace", "wearing a necktie", "wearing eyeglasses", "looking at the camera", "middle-aged"]
    out = []
    for i in range(n):
        noun, pro, pos = rng.choice(who)
        a = rng.sample(has, rng.randint(1, 4))
        b = rng.sample(is_, rng.randint(0, 3))
        form = rng.randint(0, 5)
        lst = lambda xs: xs[0] if len(xs) == 1 else ", ".join(xs[:-1]) + " and " + xs[-1]
        if form == 0:
            s = f"The {noun} has {lst(a)}."
        elif form == 1:
            s = f"This {noun} has {lst(a)}, and {lst(a[::-1])} too."
        elif form == 2:
            s = f"A {noun} with {lst(a)}."
        elif form == 3:
            s = f"{pro} has {lst(a)}."
        elif form == 4:
            s = f"This {noun} has {lst(a)} and is {lst(b or ['young'])}."
        else:
            s = f"The {noun} in the picture has {lst(a)}. {pro} is {lst(b or ['smiling'])}."
        if b and form < 4:
            s += f" {pro} is {lst(b)}."
        if rng.random() < 0.15:
            s = s.upper()
        elif rng.random() < 0.15:
            s = s.lower()
        out.append(s)
    return out

EDGE = [
    "", " ", "\t\n  \r\n", "a", "A", "I", "!", "?", ".", "...", "!!!???...", "--", "—", "…",
    "a face", "A FACE", "a   face  with \t tabs\nand\nnewlines", "  leading and trailing spaces  ",
    "no-break\u00a0space and\u3000ideographic space", "line\u2028separator\u2029paragraph", "next\x85line",
    "zero\u200bwidth\u200cjoiner\u200dhere", "soft\u00adhyphen", "bom\ufeffinside", "\x1c\x1d\x1e\x1f separators",
    "bell\x07 and null\x00 and del\x7f", "ansi \x1b[31mred\x1b[0m text", "c1 \x80 \x91quoted\x92 \x81 \x9d",
    "it's", "It's", "IT'S", "don't", "DON'T", "I'm", "we're", "they've", "you'll", "she'd", "y'all", "rock'n'roll",
    "o'clock", "'s", "'sa", "''s", "x's", "...'s", "it'ſ", "the woman’s face", "“quoted” and ‘single’", "it\u02bcs",
    "<|startoftext|>", "<|endoftext|>", "a <|endoftext|> b", "<|ENDOFTEXT|>", "<|ſtartoftext|>", "a<|startoftext|>b",
    "<|startoftext|>a face<|endoftext|>", "<|endoftext|><|endoftext|>",
    "0", "7", "42", "1234567890", "3.14159", "$100", "20%", "1,000,000", "2023-10-05", "10:30pm", "4K UHD", "a 5 o'clock shadow",
    "№5", "½ ¾ ²", "Ⅻ ⅻ", "٣٤ ١٢", "१२३", "①②", "x²",
    "#hashtag @user", "https://example.com/a_b?c=d&e=f", "email@example.com", "C++ and C#", "foo_bar baz-qux",
    "&amp;", "&amp;amp;", "&amp;amp;amp;amp;", "&lt;b&gt;bold&lt;/b&gt;", "<b>bold</b> &amp; html", "fish &amp chips",
    "&copy; 2020", "&COPY;", "&EACUTE;", "P&EACUTE;REZ", "&SZLIG;", "&FFLIG;", "&eacute;t&eacute;", "&#39;", "&#x2019;",
    "&#59;", "&#65;&#66;", "&#1;", "&#128;", "&#xD800;", "&#1114112;", "&notin; &notit; &not", "&hellip;", "AT&T",
    "&unknownentity;", "&", "&&", "& ;", "&nGt; &nLt; &NGT;",
    "café", "naïve", "Größe", "façade", "ñandú", "São Paulo", "Ærø", "Œuvre", "İstanbul", "ΣΊΣΥΦΟΣ", "ὈΔΥΣΣΕΎΣ σ",
    "Σ", "ΑΣ Β", "ΑΣ.", "Ελληνικά", "Русский текст", "Київ", "עברית", "العربية", "हिन्दी", "ไทย", "한국어 텍스트",
    "日本語のテキスト", "中文字符", "ｶﾀｶﾅ ﾊﾝｶｸ", "ｶﾞｷﾞ", "ＬＯＵＤ　ＮＯＩＳＥＳ", "ﬁne ﬂour ﬀ", "Ĳssel", "ŉ",
    "e\u0301te\u0301", "A\u030a", "cafÃ©", "Ã©tÃ©", "âœ” No problems", "\u00c3\u00a9",
    "a\u0345b", "\u0345", "ᾳ", "ǅ", "ß", "ẞ", "ﬅ", "K", "Å",
    "😀", "😀😃😄", "smiling 😀 face", "👩‍🦰 red hair", "👍🏽", "🇫🇷 flag", "🏴󠁧󠁢󠁷󠁬󠁳󠁿", "❤️", "☺", "★☆",
    "\ufffd replacement", "\U0001d400 math bold", "\U00020000 cjk ext b", "\u0e4e thai yamakkan",
    "supercalifragilisticexpialidocious", "pneumonoultramicroscopicsilicovolcanoconiosis",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "ab" * 500,
    "zxqvbl" * 300,
    "the woman is smiling. " * 40,
    "A photo of a woman with long wavy blond hair, blue eyes, high cheekbones, a pointy nose, rosy cheeks, "
    "heavy makeup, wearing lipstick, earrings and a necklace; she is young, attractive and smiling at the "
    "camera under soft studio lighting, 85mm lens, shallow depth of field, highly detailed, 8k, trending on artstation.",
    "masterpiece, best quality, (ultra-detailed:1.2), 1girl, solo, portrait, [smile], {freckles}",
    "a   b", "a\tb", "a\nb", "a \n\t b",
]

def captions():
    return face_captions(170) + EDGE
