/**
 * Look-alike letters: single code points of the Latin, Greek, Cyrillic, Armenian and Cherokee
 * scripts that Unicode lists as confusable with one ASCII letter or digit, each with the ASCII
 * character normalize.ts folds it to in the text the policy and PII detectors read.
 *
 * Source (data only, copied once when this table was written; nothing is read at run time):
 * Unicode Technical Standard #39, Unicode Security Mechanisms, data file `confusables.txt`,
 * version 17.0.0 (dated 2025-07-22), https://www.unicode.org/Public/security/17.0.0/confusables.txt
 * (the mappings behind UTS #39's "skeleton"). Selected: every line whose source is one code point
 * of the Basic Multilingual Plane, not ASCII, of one of the five scripts above (by character name),
 * left unchanged by NFKC (what NFKC changes never reaches this table: mathematical alphanumerics
 * `𝐚`, full-width `ａ`, long s `ſ`, script `ℓ` are already folded by it), and whose target is one
 * ASCII letter or digit; 180 entries. One reviewed change: confusables.txt writes capital I as its
 * prototype `l`, so its capital-I look-alikes map to `l`; here they map to `I` (4 entries, marked),
 * so that an upper-case word still reads as one.
 *
 * Left out: look-alikes of several characters (`rn` for `m`, `cl` for `d`, `vv` for `w`), letters
 * with diacritics (Cyrillic `ё`, Greek `ό`: their skeletons keep the mark), letters of other
 * scripts (Coptic, Lisu, Osage, Deseret, Warang Citi, Tifinagh, Canadian Syllabics, …), symbols
 * (`∪`, `⍳`) and code points outside the Basic Multilingual Plane (one UTF-16 unit each keeps the
 * folded text as long as the original: see normalize.ts).
 */
export const LOOK_ALIKES: readonly (readonly [codePoint: number, ascii: string])[] = [
  [0x00fe, "p"], // þ LATIN SMALL LETTER THORN
  [0x0131, "i"], // ı LATIN SMALL LETTER DOTLESS I
  [0x0184, "b"], // Ƅ LATIN CAPITAL LETTER TONE SIX
  [0x018d, "g"], // ƍ LATIN SMALL LETTER TURNED DELTA
  [0x0192, "f"], // ƒ LATIN SMALL LETTER F WITH HOOK
  [0x0196, "I"], // Ɩ LATIN CAPITAL LETTER IOTA (confusables: "l")
  [0x01a6, "R"], // Ʀ LATIN LETTER YR
  [0x01a7, "2"], // Ƨ LATIN CAPITAL LETTER TONE TWO
  [0x01b7, "3"], // Ʒ LATIN CAPITAL LETTER EZH
  [0x01bc, "5"], // Ƽ LATIN CAPITAL LETTER TONE FIVE
  [0x01bd, "s"], // ƽ LATIN SMALL LETTER TONE FIVE
  [0x01bf, "p"], // ƿ LATIN LETTER WYNN
  [0x01c0, "l"], // ǀ LATIN LETTER DENTAL CLICK
  [0x021c, "3"], // Ȝ LATIN CAPITAL LETTER YOGH
  [0x0222, "8"], // Ȣ LATIN CAPITAL LETTER OU
  [0x0223, "8"], // ȣ LATIN SMALL LETTER OU
  [0x0251, "a"], // ɑ LATIN SMALL LETTER ALPHA
  [0x0261, "g"], // ɡ LATIN SMALL LETTER SCRIPT G
  [0x0263, "y"], // ɣ LATIN SMALL LETTER GAMMA
  [0x0269, "i"], // ɩ LATIN SMALL LETTER IOTA
  [0x026a, "i"], // ɪ LATIN LETTER SMALL CAPITAL I
  [0x026f, "w"], // ɯ LATIN SMALL LETTER TURNED M
  [0x028b, "u"], // ʋ LATIN SMALL LETTER V WITH HOOK
  [0x028f, "y"], // ʏ LATIN LETTER SMALL CAPITAL Y
  [0x037f, "J"], // Ϳ GREEK CAPITAL LETTER YOT
  [0x0391, "A"], // Α GREEK CAPITAL LETTER ALPHA
  [0x0392, "B"], // Β GREEK CAPITAL LETTER BETA
  [0x0395, "E"], // Ε GREEK CAPITAL LETTER EPSILON
  [0x0396, "Z"], // Ζ GREEK CAPITAL LETTER ZETA
  [0x0397, "H"], // Η GREEK CAPITAL LETTER ETA
  [0x0399, "I"], // Ι GREEK CAPITAL LETTER IOTA (confusables: "l")
  [0x039a, "K"], // Κ GREEK CAPITAL LETTER KAPPA
  [0x039c, "M"], // Μ GREEK CAPITAL LETTER MU
  [0x039d, "N"], // Ν GREEK CAPITAL LETTER NU
  [0x039f, "O"], // Ο GREEK CAPITAL LETTER OMICRON
  [0x03a1, "P"], // Ρ GREEK CAPITAL LETTER RHO
  [0x03a4, "T"], // Τ GREEK CAPITAL LETTER TAU
  [0x03a5, "Y"], // Υ GREEK CAPITAL LETTER UPSILON
  [0x03a7, "X"], // Χ GREEK CAPITAL LETTER CHI
  [0x03b1, "a"], // α GREEK SMALL LETTER ALPHA
  [0x03b3, "y"], // γ GREEK SMALL LETTER GAMMA
  [0x03b9, "i"], // ι GREEK SMALL LETTER IOTA
  [0x03bd, "v"], // ν GREEK SMALL LETTER NU
  [0x03bf, "o"], // ο GREEK SMALL LETTER OMICRON
  [0x03c1, "p"], // ρ GREEK SMALL LETTER RHO
  [0x03c3, "o"], // σ GREEK SMALL LETTER SIGMA
  [0x03c5, "u"], // υ GREEK SMALL LETTER UPSILON
  [0x03dc, "F"], // Ϝ GREEK LETTER DIGAMMA
  [0x03f3, "j"], // ϳ GREEK LETTER YOT
  [0x03f8, "p"], // ϸ GREEK SMALL LETTER SHO
  [0x03fa, "M"], // Ϻ GREEK CAPITAL LETTER SAN
  [0x0405, "S"], // Ѕ CYRILLIC CAPITAL LETTER DZE
  [0x0406, "I"], // І CYRILLIC CAPITAL LETTER BYELORUSSIAN-UKRAINIAN I (confusables: "l")
  [0x0408, "J"], // Ј CYRILLIC CAPITAL LETTER JE
  [0x0410, "A"], // А CYRILLIC CAPITAL LETTER A
  [0x0412, "B"], // В CYRILLIC CAPITAL LETTER VE
  [0x0415, "E"], // Е CYRILLIC CAPITAL LETTER IE
  [0x0417, "3"], // З CYRILLIC CAPITAL LETTER ZE
  [0x041a, "K"], // К CYRILLIC CAPITAL LETTER KA
  [0x041c, "M"], // М CYRILLIC CAPITAL LETTER EM
  [0x041d, "H"], // Н CYRILLIC CAPITAL LETTER EN
  [0x041e, "O"], // О CYRILLIC CAPITAL LETTER O
  [0x0420, "P"], // Р CYRILLIC CAPITAL LETTER ER
  [0x0421, "C"], // С CYRILLIC CAPITAL LETTER ES
  [0x0422, "T"], // Т CYRILLIC CAPITAL LETTER TE
  [0x0423, "Y"], // У CYRILLIC CAPITAL LETTER U
  [0x0425, "X"], // Х CYRILLIC CAPITAL LETTER HA
  [0x042c, "b"], // Ь CYRILLIC CAPITAL LETTER SOFT SIGN
  [0x0430, "a"], // а CYRILLIC SMALL LETTER A
  [0x0431, "6"], // б CYRILLIC SMALL LETTER BE
  [0x0433, "r"], // г CYRILLIC SMALL LETTER GHE
  [0x0435, "e"], // е CYRILLIC SMALL LETTER IE
  [0x043e, "o"], // о CYRILLIC SMALL LETTER O
  [0x0440, "p"], // р CYRILLIC SMALL LETTER ER
  [0x0441, "c"], // с CYRILLIC SMALL LETTER ES
  [0x0443, "y"], // у CYRILLIC SMALL LETTER U
  [0x0445, "x"], // х CYRILLIC SMALL LETTER HA
  [0x0448, "w"], // ш CYRILLIC SMALL LETTER SHA
  [0x0455, "s"], // ѕ CYRILLIC SMALL LETTER DZE
  [0x0456, "i"], // і CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I
  [0x0458, "j"], // ј CYRILLIC SMALL LETTER JE
  [0x0461, "w"], // ѡ CYRILLIC SMALL LETTER OMEGA
  [0x0474, "V"], // Ѵ CYRILLIC CAPITAL LETTER IZHITSA
  [0x0475, "v"], // ѵ CYRILLIC SMALL LETTER IZHITSA
  [0x04ae, "Y"], // Ү CYRILLIC CAPITAL LETTER STRAIGHT U
  [0x04af, "y"], // ү CYRILLIC SMALL LETTER STRAIGHT U
  [0x04bb, "h"], // һ CYRILLIC SMALL LETTER SHHA
  [0x04bd, "e"], // ҽ CYRILLIC SMALL LETTER ABKHASIAN CHE
  [0x04c0, "I"], // Ӏ CYRILLIC LETTER PALOCHKA (confusables: "l")
  [0x04cf, "l"], // ӏ CYRILLIC SMALL LETTER PALOCHKA
  [0x04e0, "3"], // Ӡ CYRILLIC CAPITAL LETTER ABKHASIAN DZE
  [0x0501, "d"], // ԁ CYRILLIC SMALL LETTER KOMI DE
  [0x050c, "G"], // Ԍ CYRILLIC CAPITAL LETTER KOMI SJE
  [0x051b, "q"], // ԛ CYRILLIC SMALL LETTER QA
  [0x051c, "W"], // Ԝ CYRILLIC CAPITAL LETTER WE
  [0x051d, "w"], // ԝ CYRILLIC SMALL LETTER WE
  [0x054d, "U"], // Ս ARMENIAN CAPITAL LETTER SEH
  [0x054f, "S"], // Տ ARMENIAN CAPITAL LETTER TIWN
  [0x0555, "O"], // Օ ARMENIAN CAPITAL LETTER OH
  [0x0561, "w"], // ա ARMENIAN SMALL LETTER AYB
  [0x0563, "q"], // գ ARMENIAN SMALL LETTER GIM
  [0x0566, "q"], // զ ARMENIAN SMALL LETTER ZA
  [0x0570, "h"], // հ ARMENIAN SMALL LETTER HO
  [0x0578, "n"], // ո ARMENIAN SMALL LETTER VO
  [0x057c, "n"], // ռ ARMENIAN SMALL LETTER RA
  [0x057d, "u"], // ս ARMENIAN SMALL LETTER SEH
  [0x0581, "g"], // ց ARMENIAN SMALL LETTER CO
  [0x0582, "i"], // ւ ARMENIAN SMALL LETTER YIWN
  [0x0584, "f"], // ք ARMENIAN SMALL LETTER KEH
  [0x0585, "o"], // օ ARMENIAN SMALL LETTER OH
  [0x13a0, "D"], // Ꭰ CHEROKEE LETTER A
  [0x13a1, "R"], // Ꭱ CHEROKEE LETTER E
  [0x13a2, "T"], // Ꭲ CHEROKEE LETTER I
  [0x13a5, "i"], // Ꭵ CHEROKEE LETTER V
  [0x13a9, "Y"], // Ꭹ CHEROKEE LETTER GI
  [0x13aa, "A"], // Ꭺ CHEROKEE LETTER GO
  [0x13ab, "J"], // Ꭻ CHEROKEE LETTER GU
  [0x13ac, "E"], // Ꭼ CHEROKEE LETTER GV
  [0x13b3, "W"], // Ꮃ CHEROKEE LETTER LA
  [0x13b7, "M"], // Ꮇ CHEROKEE LETTER LU
  [0x13bb, "H"], // Ꮋ CHEROKEE LETTER MI
  [0x13bd, "Y"], // Ꮍ CHEROKEE LETTER MU
  [0x13c0, "G"], // Ꮐ CHEROKEE LETTER NAH
  [0x13c2, "h"], // Ꮒ CHEROKEE LETTER NI
  [0x13c3, "Z"], // Ꮓ CHEROKEE LETTER NO
  [0x13ce, "4"], // Ꮞ CHEROKEE LETTER SE
  [0x13cf, "b"], // Ꮟ CHEROKEE LETTER SI
  [0x13d2, "R"], // Ꮢ CHEROKEE LETTER SV
  [0x13d4, "W"], // Ꮤ CHEROKEE LETTER TA
  [0x13d5, "S"], // Ꮥ CHEROKEE LETTER DE
  [0x13d9, "V"], // Ꮩ CHEROKEE LETTER DO
  [0x13da, "S"], // Ꮪ CHEROKEE LETTER DU
  [0x13de, "L"], // Ꮮ CHEROKEE LETTER TLE
  [0x13df, "C"], // Ꮯ CHEROKEE LETTER TLI
  [0x13e2, "P"], // Ꮲ CHEROKEE LETTER TLV
  [0x13e6, "K"], // Ꮶ CHEROKEE LETTER TSO
  [0x13e7, "d"], // Ꮷ CHEROKEE LETTER TSU
  [0x13ee, "6"], // Ꮾ CHEROKEE LETTER WV
  [0x13f3, "G"], // Ᏻ CHEROKEE LETTER YU
  [0x13f4, "B"], // Ᏼ CHEROKEE LETTER YV
  [0x1d04, "c"], // ᴄ LATIN LETTER SMALL CAPITAL C
  [0x1d0f, "o"], // ᴏ LATIN LETTER SMALL CAPITAL O
  [0x1d11, "o"], // ᴑ LATIN SMALL LETTER SIDEWAYS O
  [0x1d1c, "u"], // ᴜ LATIN LETTER SMALL CAPITAL U
  [0x1d20, "v"], // ᴠ LATIN LETTER SMALL CAPITAL V
  [0x1d21, "w"], // ᴡ LATIN LETTER SMALL CAPITAL W
  [0x1d22, "z"], // ᴢ LATIN LETTER SMALL CAPITAL Z
  [0x1d26, "r"], // ᴦ GREEK LETTER SMALL CAPITAL GAMMA
  [0x1d83, "g"], // ᶃ LATIN SMALL LETTER G WITH PALATAL HOOK
  [0x1d8c, "y"], // ᶌ LATIN SMALL LETTER V WITH PALATAL HOOK
  [0x1e9d, "f"], // ẝ LATIN SMALL LETTER LONG S WITH HIGH STROKE
  [0x1eff, "y"], // ỿ LATIN SMALL LETTER Y WITH LOOP
  [0xa644, "2"], // Ꙅ CYRILLIC CAPITAL LETTER REVERSED DZE
  [0xa647, "i"], // ꙇ CYRILLIC SMALL LETTER IOTA
  [0xa731, "s"], // ꜱ LATIN LETTER SMALL CAPITAL S
  [0xa75a, "2"], // Ꝛ LATIN CAPITAL LETTER R ROTUNDA
  [0xa76a, "3"], // Ꝫ LATIN CAPITAL LETTER ET
  [0xa76e, "9"], // Ꝯ LATIN CAPITAL LETTER CON
  [0xa798, "F"], // Ꞙ LATIN CAPITAL LETTER F WITH STROKE
  [0xa799, "f"], // ꞙ LATIN SMALL LETTER F WITH STROKE
  [0xa79f, "u"], // ꞟ LATIN SMALL LETTER VOLAPUK UE
  [0xa7ab, "3"], // Ɜ LATIN CAPITAL LETTER REVERSED OPEN E
  [0xa7b2, "J"], // Ʝ LATIN CAPITAL LETTER J WITH CROSSED-TAIL
  [0xa7b3, "X"], // Ꭓ LATIN CAPITAL LETTER CHI
  [0xa7b4, "B"], // Ꞵ LATIN CAPITAL LETTER BETA
  [0xab32, "e"], // ꬲ LATIN SMALL LETTER BLACKLETTER E
  [0xab35, "f"], // ꬵ LATIN SMALL LETTER LENIS F
  [0xab3d, "o"], // ꬽ LATIN SMALL LETTER BLACKLETTER O
  [0xab47, "r"], // ꭇ LATIN SMALL LETTER R WITHOUT HANDLE
  [0xab48, "r"], // ꭈ LATIN SMALL LETTER DOUBLE R
  [0xab4e, "u"], // ꭎ LATIN SMALL LETTER U WITH SHORT RIGHT LEG
  [0xab52, "u"], // ꭒ LATIN SMALL LETTER U WITH LEFT HOOK
  [0xab5a, "y"], // ꭚ LATIN SMALL LETTER Y WITH SHORT RIGHT LEG
  [0xab75, "i"], // ꭵ CHEROKEE SMALL LETTER V
  [0xab81, "r"], // ꮁ CHEROKEE SMALL LETTER HU
  [0xab83, "w"], // ꮃ CHEROKEE SMALL LETTER LA
  [0xab93, "z"], // ꮓ CHEROKEE SMALL LETTER NO
  [0xaba9, "v"], // ꮩ CHEROKEE SMALL LETTER DO
  [0xabaa, "s"], // ꮪ CHEROKEE SMALL LETTER DU
  [0xabaf, "c"], // ꮯ CHEROKEE SMALL LETTER TLI
];
