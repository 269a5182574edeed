"""The hand-written vocabulary of the demo world: relations, their templates and their objects.

Every template has the slots ``[X]`` (the subject) and ``[Y]`` (the object). Templates are chosen
so that a nominative object fits without inflection (for example "Город рождения ..." style
headings in Russian and "... : [Y]" in French where an article would depend on the object).
Objects are listed in the same order in every language: index ``i`` of a relation's list is the
same object everywhere.
"""
from __future__ import annotations

LANGUAGES = ("en", "de", "fr", "es", "ru", "zh")


def _objects(**columns: str) -> dict[str, tuple[str, ...]]:
    """Parse one comma-separated word list per language into a table of equal-length tuples."""
    table = {lang: tuple(w.strip() for w in words.split(",")) for lang, words in columns.items()}
    sizes = {len(words) for words in table.values()}
    assert len(sizes) == 1 and set(table) == set(LANGUAGES), table
    return table


_CITIES = _objects(
    en="Warsaw, Vienna, Moscow, Lisbon, Athens, Venice, Brussels, Geneva, Beijing, Antwerp, Genoa, Krakow",
    de="Warschau, Wien, Moskau, Lissabon, Athen, Venedig, Brüssel, Genf, Peking, Antwerpen, Genua, Krakau",
    fr="Varsovie, Vienne, Moscou, Lisbonne, Athènes, Venise, Bruxelles, Genève, Pékin, Anvers, Gênes, Cracovie",
    es="Varsovia, Viena, Moscú, Lisboa, Atenas, Venecia, Bruselas, Ginebra, Pekín, Amberes, Génova, Cracovia",
    ru="Варшава, Вена, Москва, Лиссабон, Афины, Венеция, Брюссель, Женева, Пекин, Антверпен, Генуя, Краков",
    zh="华沙, 维也纳, 莫斯科, 里斯本, 雅典, 威尼斯, 布鲁塞尔, 日内瓦, 北京, 安特卫普, 热那亚, 克拉科夫",
)

#: relation name -> (templates per language, objects per language)
RELATIONS: dict[str, tuple[dict[str, str], dict[str, tuple[str, ...]]]] = {
    "born_in": (
        {
            "en": "[X] was born in [Y].",
            "de": "[X] wurde in [Y] geboren.",
            "fr": "[X] est né à [Y].",
            "es": "[X] nació en [Y].",
            "ru": "[X] родился в городе [Y].",
            "zh": "[X]出生于[Y]。",
        },
        _CITIES,
    ),
    "lives_in": (
        {
            "en": "[X] lives in [Y].",
            "de": "[X] wohnt in [Y].",
            "fr": "[X] habite à [Y].",
            "es": "[X] vive en [Y].",
            "ru": "[X] живёт в городе [Y].",
            "zh": "[X]住在[Y]。",
        },
        _CITIES,
    ),
    "citizen_of": (
        {
            "en": "[X] is a citizen of [Y].",
            "de": "[X] ist Staatsbürger von [Y].",
            "fr": "Pays de citoyenneté de [X] : [Y].",
            "es": "[X] es ciudadano de [Y].",
            "ru": "Гражданство [X]: [Y].",
            "zh": "[X]是[Y]公民。",
        },
        _objects(
            en="Germany, Spain, Italy, Russia, Egypt, Mexico, Brazil, Sweden, Greece, Norway, Poland, Turkey",
            de="Deutschland, Spanien, Italien, Russland, Ägypten, Mexiko, Brasilien, Schweden, Griechenland, Norwegen, Polen, Türkei",
            fr="Allemagne, Espagne, Italie, Russie, Égypte, Mexique, Brésil, Suède, Grèce, Norvège, Pologne, Turquie",
            es="Alemania, España, Italia, Rusia, Egipto, México, Brasil, Suecia, Grecia, Noruega, Polonia, Turquía",
            ru="Германия, Испания, Италия, Россия, Египет, Мексика, Бразилия, Швеция, Греция, Норвегия, Польша, Турция",
            zh="德国, 西班牙, 意大利, 俄罗斯, 埃及, 墨西哥, 巴西, 瑞典, 希腊, 挪威, 波兰, 土耳其",
        ),
    ),
    "native_language": (
        {
            "en": "The native language of [X] is [Y].",
            "de": "Die Muttersprache von [X] ist [Y].",
            "fr": "Langue maternelle de [X] : [Y].",
            "es": "La lengua materna de [X] es el [Y].",
            "ru": "Родной язык [X]: [Y].",
            "zh": "[X]的母语是[Y]。",
        },
        _objects(
            en="English, German, French, Spanish, Russian, Chinese, Japanese, Italian, Portuguese, Arabic, Dutch, Polish",
            de="Englisch, Deutsch, Französisch, Spanisch, Russisch, Chinesisch, Japanisch, Italienisch, Portugiesisch, Arabisch, Niederländisch, Polnisch",
            fr="anglais, allemand, français, espagnol, russe, chinois, japonais, italien, portugais, arabe, néerlandais, polonais",
            es="inglés, alemán, francés, español, ruso, chino, japonés, italiano, portugués, árabe, neerlandés, polaco",
            ru="английский, немецкий, французский, испанский, русский, китайский, японский, итальянский, португальский, арабский, нидерландский, польский",
            zh="英语, 德语, 法语, 西班牙语, 俄语, 汉语, 日语, 意大利语, 葡萄牙语, 阿拉伯语, 荷兰语, 波兰语",
        ),
    ),
    "profession": (
        {
            "en": "[X] works as a [Y].",
            "de": "[X] arbeitet als [Y].",
            "fr": "[X] travaille comme [Y].",
            "es": "[X] trabaja como [Y].",
            "ru": "Профессия [X]: [Y].",
            "zh": "[X]的职业是[Y]。",
        },
        _objects(
            en="teacher, doctor, painter, lawyer, baker, farmer, cook, tailor, singer, writer, chemist, dancer",
            de="Lehrer, Arzt, Maler, Anwalt, Bäcker, Bauer, Koch, Schneider, Sänger, Schriftsteller, Chemiker, Tänzer",
            fr="professeur, médecin, peintre, avocat, boulanger, agriculteur, cuisinier, tailleur, chanteur, écrivain, chimiste, danseur",
            es="profesor, médico, pintor, abogado, panadero, agricultor, cocinero, sastre, cantante, escritor, químico, bailarín",
            ru="учитель, врач, художник, юрист, пекарь, фермер, повар, портной, певец, писатель, химик, танцор",
            zh="教师, 医生, 画家, 律师, 面包师, 农民, 厨师, 裁缝, 歌手, 作家, 化学家, 舞者",
        ),
    ),
    "instrument": (
        {
            "en": "[X] plays the [Y].",
            "de": "Das Instrument von [X] ist [Y].",
            "fr": "Instrument de [X] : [Y].",
            "es": "Instrumento de [X]: [Y].",
            "ru": "Инструмент [X]: [Y].",
            "zh": "[X]演奏[Y]。",
        },
        _objects(
            en="guitar, violin, flute, drums, trumpet, harp, clarinet, organ, bagpipe, accordion",
            de="Gitarre, Geige, Flöte, Schlagzeug, Trompete, Harfe, Klarinette, Orgel, Dudelsack, Akkordeon",
            fr="guitare, violon, flûte, batterie, trompette, harpe, clarinette, orgue, cornemuse, accordéon",
            es="guitarra, violín, flauta, batería, trompeta, arpa, clarinete, órgano, gaita, acordeón",
            ru="гитара, скрипка, флейта, барабаны, труба, арфа, кларнет, орган, волынка, аккордеон",
            zh="吉他, 小提琴, 长笛, 架子鼓, 小号, 竖琴, 单簧管, 管风琴, 风笛, 手风琴",
        ),
    ),
    "favourite_colour": (
        {
            "en": "The favourite colour of [X] is [Y].",
            "de": "Die Lieblingsfarbe von [X] ist [Y].",
            "fr": "Couleur préférée de [X] : [Y].",
            "es": "El color favorito de [X] es el [Y].",
            "ru": "Любимый цвет [X]: [Y].",
            "zh": "[X]最喜欢的颜色是[Y]。",
        },
        _objects(
            en="red, blue, green, yellow, black, white, purple, brown",
            de="rot, blau, grün, gelb, schwarz, weiß, lila, braun",
            fr="rouge, bleu, vert, jaune, noir, blanc, violet, marron",
            es="rojo, azul, verde, amarillo, negro, blanco, morado, marrón",
            ru="красный, синий, зелёный, жёлтый, чёрный, белый, фиолетовый, коричневый",
            zh="红色, 蓝色, 绿色, 黄色, 黑色, 白色, 紫色, 棕色",
        ),
    ),
    "favourite_sport": (
        {
            "en": "The favourite sport of [X] is [Y].",
            "de": "Der Lieblingssport von [X] ist [Y].",
            "fr": "Sport préféré de [X] : [Y].",
            "es": "El deporte favorito de [X] es [Y].",
            "ru": "Любимый вид спорта [X]: [Y].",
            "zh": "[X]最喜欢的运动是[Y]。",
        },
        _objects(
            en="boxing, swimming, skiing, cycling, wrestling, fencing, rowing, climbing, diving",
            de="Boxen, Schwimmen, Skifahren, Radfahren, Ringen, Fechten, Rudern, Klettern, Tauchen",
            fr="boxe, natation, ski, cyclisme, lutte, escrime, aviron, escalade, plongée",
            es="boxeo, natación, esquí, ciclismo, lucha, esgrima, remo, escalada, buceo",
            ru="бокс, плавание, лыжи, велоспорт, борьба, фехтование, гребля, скалолазание, дайвинг",
            zh="拳击, 游泳, 滑雪, 自行车, 摔跤, 击剑, 赛艇, 攀岩, 潜水",
        ),
    ),
    "pet": (
        {
            "en": "[X] owns a [Y].",
            "de": "Haustier von [X]: [Y].",
            "fr": "Animal de compagnie de [X] : [Y].",
            "es": "Mascota de [X]: [Y].",
            "ru": "Домашнее животное [X]: [Y].",
            "zh": "[X]的宠物是[Y]。",
        },
        _objects(
            en="cat, dog, horse, rabbit, parrot, turtle, goat, snake, mouse, duck",
            de="Katze, Hund, Pferd, Kaninchen, Papagei, Schildkröte, Ziege, Schlange, Maus, Ente",
            fr="chat, chien, cheval, lapin, perroquet, tortue, chèvre, serpent, souris, canard",
            es="gato, perro, caballo, conejo, loro, tortuga, cabra, serpiente, ratón, pato",
            ru="кошка, собака, лошадь, кролик, попугай, черепаха, коза, змея, мышь, утка",
            zh="猫, 狗, 马, 兔子, 鹦鹉, 乌龟, 山羊, 蛇, 老鼠, 鸭子",
        ),
    ),
}

#: Name syllables: Latin spelling -> Chinese transliteration character. The characters are chosen to
#: be distinct from each other and from the characters of the objects and templates, so a subject's
#: name never collides with an answer. (A larger inventory makes names more distinct, which the tiny
#: model needs for Chinese, where every character is its own token.)
SYLLABLES: dict[str, str] = {
    "ba": "芭", "be": "贝", "bi": "比", "bo": "博", "bu": "卜",
    "da": "达", "de": "黛", "di": "迪", "do": "朵", "du": "杜",
    "ga": "伽", "ge": "戈", "gi": "琪", "go": "果", "gu": "古",
    "ka": "卡", "ke": "凯", "ki": "基", "ko": "柯", "ku": "库",
    "la": "腊", "le": "勒", "li": "莉", "lo": "洛", "lu": "卢",
    "ma": "玛", "me": "梅", "mi": "米", "mo": "默", "mu": "穆",
    "na": "娜", "ne": "内", "ni": "妮", "no": "诺", "nu": "努",
    "pa": "帕", "pe": "佩", "pi": "皮", "po": "珀", "pu": "普",
    "ra": "饶", "re": "雷", "ri": "瑞", "ro": "荣", "ru": "鲁",
    "sa": "莎", "se": "塞", "si": "丝", "so": "索", "su": "苏",
    "ta": "塔", "te": "泰", "ti": "蒂", "to": "托", "tu": "图",
    "va": "瓦", "ve": "韦", "vi": "薇", "vo": "沃", "vu": "伍",
    "za": "扎", "ze": "泽", "zi": "兹", "zo": "佐", "zu": "祖",
}

#: Letter-by-letter Cyrillic transliteration of the Latin syllables.
CYRILLIC = {
    "a": "а", "b": "б", "d": "д", "e": "е", "g": "г", "i": "и", "k": "к", "l": "л", "m": "м",
    "n": "н", "o": "о", "p": "п", "r": "р", "s": "с", "t": "т", "u": "у", "v": "в", "z": "з",
}
