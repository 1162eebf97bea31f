"""The embedded corpus' word tables: plain strings, no logic.

The grammar (:mod:`dmx.data.embedded.grammar`) turns each table into a sampler in table order,
so a list's order is its frequency order: the first word is the most common. Editing a table
changes the corpus, and so every figure measured on it.
"""

from __future__ import annotations

FEMALE_NAMES: tuple[str, ...] = tuple(
    (
        "mary anna ella rose lucy clara emma grace alice iris nora ruth jane helen edith ada "
        "beth kate molly sarah julia lily maud agnes ivy martha nell flora hazel greta sophie "
        "tess vera wendy irene hilda"
    ).split()
)
MALE_NAMES: tuple[str, ...] = tuple(
    (
        "tom john peter paul james henry jack oliver sam ben hugo oscar felix arthur edward "
        "frank george harry isaac leo max ned owen ralph simon victor walter alfred carl dan "
        "eric ivan"
    ).split()
)
# Shared vocabulary (every topic uses it). Words are space-separated; phrases, " | "-separated.
NUMBERS = "two three four five six seven eight nine ten eleven twelve twenty"
QUANTIFIERS = "some | many | several | a few | a dozen"
GENERAL_ADJECTIVES = "old new big small large little fine good odd lovely plain"
PERSON_ADJECTIVES = (
    "young kind busy tired happy clever proud quiet brave careful patient cheerful "
    "eager elderly lonely stubborn wise grumpy"
)
OF_ADJECTIVES = "proud fond tired afraid sure"  # "proud of her plums"
PLACE_ADJECTIVES = "old little quiet wide narrow empty busy"
INTENSIFIERS = "| | | very | quite | rather | not | still"
# Verbs are "base", "base/past" or "base/past/ing".
GENERAL_VERBS = (
    "see/saw find/found carry bring/brought take/took keep/kept need like count clean "
    "check hold/held buy/bought sell/sold move admire"
)
CONTROL_VERBS = "want like try need hope plan/planned love"
GIVE_VERBS = "give/gave show/showed send/sent offer lend/lent"
FEEL = "feel/felt"
SHARED_PEOPLE = ("friend", "neighbour", "cousin", "sister", "brother", "uncle", "aunt")
CONJUNCTIONS = "and but so"
WHEN = "when once while"
OPENERS = "then | later , | soon | after that , | meanwhile , | at first , | in the end ,"
TIMES = (
    "in the morning | in the evening | at dawn | in the afternoon | at night | at noon | "
    "at dusk | on monday | on sunday | on saturday | on friday | on tuesday | on wednesday | "
    "on thursday | in the spring | in the summer | in the autumn | in the winter"
)
PAST_TIMES = (
    "yesterday | one morning | that evening | last week | the next day | long ago | "
    "last winter | the day before"
)
PRESENT_TIMES = (
    "every day | every morning | these days | each week | nowadays | most evenings | "
    "every spring | twice a week"
)
IDIOMS = (
    "with great care | in a hurry | all day long | from dawn to dusk | now and then | "
    "little by little | rain or shine | day after day | without a word | once in a while | "
    "for a while | at once | at last | as usual"
)
SAYING_FRAMES = (
    "as the old saying goes , | everyone knows that | as they say , | her mother always said "
    "that | his father always said that"
)
# Words the grammar writes itself, outside any table.
GRAMMAR_WORDS = (
    ". , the a an and to of who lives lived near called has had been for years there was were "
    "is are because he she him his her they their it them felt feels feel"
)


# --------------------------------------------------------------------------------------
# The topics. Each list is in order of frequency (see grammar._ZIPF). Nouns are "singular" or
# "singular:plural"; verbs are "base", "base/past" or "base/past/ing" with their object
# groups after a colon; places are "place:prep,prep".
# --------------------------------------------------------------------------------------

TOPIC_DATA: dict[str, dict] = {
    "farming": {
        "roles": "farmer shepherd farmhand beekeeper labourer goatherd",
        "groups": {
            "animal": (
                "woolly hungry speckled plump muddy",
                "goat cow sheep:sheep pig hen goose:geese calf:calves lamb ox:oxen donkey",
            ),
            "crop": (
                "ripe golden juicy withered",
                "apple pear plum turnip potato:potatoes cabbage carrot pumpkin",
            ),
            "tool": ("rusty sturdy blunt crooked", "plough rake hoe scythe spade pitchfork"),
        },
        "verbs": (
            "feed/fed:animal milk:animal herd:animal shear:animal harvest:crop plant:crop "
            "pick:crop water:crop sharpen:tool fix:tool"
        ),
        "intransitive": {"animal": "graze bleat doze", "crop": "ripen sprout rot/rotted"},
        "places": (
            "barn:in,behind,near orchard:in,near meadow:across,in farmyard:in,across "
            "stable:in,near pasture:in,across"
        ),
        "sayings": ("make hay while the sun shines", "you reap what you sow"),
    },
    "cooking": {
        "roles": "cook baker chef butcher",
        "groups": {
            "ingredient": (
                "fresh spicy crisp tender",
                "onion egg tomato:tomatoes pepper leek lemon sausage olive radish",
            ),
            "dish": (
                "hot tasty delicious steaming creamy",
                "pie stew soup pudding pancake dumpling tart cake loaf:loaves",
            ),
            "utensil": (
                "greasy enamel chipped",
                "pot pan knife:knives ladle kettle bowl spoon skillet whisk",
            ),
        },
        "verbs": (
            "chop/chopped:ingredient peel:ingredient slice:ingredient fry:ingredient "
            "stir/stirred:dish bake:dish serve:dish taste:dish wash:utensil "
            "scrub/scrubbed:utensil"
        ),
        "intransitive": {
            "dish": "simmer bubble cool",
            "ingredient": "sizzle soften",
            "utensil": "clatter",
        },
        "places": "kitchen:in pantry:in,near larder:in scullery:in hearth:near,by",
        "sayings": (
            "too many cooks spoil the broth",
            "the proof of the pudding is in the eating",
        ),
    },
    "sailing": {
        "roles": "sailor captain deckhand navigator boatswain",
        "groups": {
            "vessel": ("sleek leaky swift seaworthy", "boat ship yacht dinghy schooner canoe"),
            "gear": ("taut tarred knotted", "sail rope anchor mast oar rudder compass tiller"),
            "sea": ("choppy foaming rolling", "wave tide current reef gull buoy"),
        },
        "verbs": (
            "steer:vessel row:vessel launch:vessel moor:vessel hoist:gear coil:gear "
            "tie:gear lower:gear ride/rode:sea chart:sea"
        ),
        "intransitive": {
            "vessel": "drift sink/sank capsize",
            "gear": "flap/flapped creak",
            "sea": "swell crash",
        },
        "places": (
            "harbour:in,near deck:on,across dock:on,near quay:on,along cabin:in bay:in,across"
        ),
        "sayings": ("a rising tide lifts all boats", "any port will do in a tempest"),
    },
    "trade": {
        "roles": "merchant trader shopkeeper peddler moneylender",
        "groups": {
            "goods": (
                "costly cheap rare exotic imported",
                "carpet vase candle barrel crate rug basket jewel mirror teapot",
            ),
            "money": ("counterfeit foreign tarnished", "coin penny purse ledger receipt invoice"),
        },
        "verbs": (
            "trade:goods weigh:goods price:goods wrap/wrapped:goods load:goods unload:goods "
            "barter:goods earn:money borrow:money spend/spent:money owe:money"
        ),
        "intransitive": {"goods": "tumble", "money": "jingle clink"},
        "places": (
            "market:at,in,near bazaar:at,in shop:in,near warehouse:in,behind "
            "counter:behind square:in,across"
        ),
        "sayings": ("a penny saved is a penny earned", "the customer is always right"),
    },
    "weather": {
        "roles": "forecaster observer meteorologist",
        "groups": {
            "sky": (
                "stormy gloomy thundery fluffy",
                "cloud storm gale gust shower breeze hailstone snowflake raindrop",
            ),
            "instrument": (
                "accurate precise sensitive",
                "barometer thermometer weathervane windsock almanac anemometer",
            ),
        },
        "verbs": (
            "predict:sky forecast/forecast:sky record:sky,instrument calibrate:instrument "
            "consult:instrument"
        ),
        "intransitive": {"sky": "gather darken howl swirl blow/blew roar"},
        "places": "valley:across,over coast:along,near heath:across,on headland:on,over",
        "sayings": ("every cloud has a silver lining", "it never rains but it pours"),
    },
    "school": {
        "roles": "teacher pupil tutor lecturer scholar",
        "groups": {
            "material": (
                "blank tattered neat",
                "notebook pencil ruler eraser satchel textbook inkwell",
            ),
            "lesson": (
                "difficult tricky tedious",
                "lesson exam essay puzzle poem riddle quiz:quizzes sum",
            ),
        },
        "verbs": (
            "write/wrote:lesson recite:lesson solve:lesson study:lesson mark:lesson "
            "open:material shut/shut/shutting:material fill:material"
        ),
        "intransitive": {"lesson": "drag/dragged begin/began/beginning"},
        "places": "classroom:in schoolyard:in,across library:in,near playground:in,across",
        "sayings": ("practice makes perfect", "knowledge is power"),
    },
    "medicine": {
        "roles": "doctor nurse surgeon apothecary herbalist",
        "groups": {
            "remedy": (
                "bitter soothing herbal",
                "pill tonic syrup ointment bandage poultice remedy",
            ),
            "ailment": ("painful nasty mild", "fever cough wound bruise rash blister headache"),
            "instrument": ("sterile", "stethoscope scalpel splint syringe"),
        },
        "verbs": (
            "prescribe:remedy prepare:remedy apply:remedy swallow:remedy treat:ailment "
            "cure:ailment examine:ailment bandage:ailment sterilize:instrument"
        ),
        "intransitive": {"ailment": "heal worsen itch"},
        "places": "clinic:in,at ward:in infirmary:in,near hospital:in,at pharmacy:in,at",
        "sayings": ("prevention is better than cure", "laughter is the best medicine"),
    },
    "music": {
        "roles": "musician singer drummer fiddler piper composer",
        "groups": {
            "instrument": (
                "tuneful battered brass mellow",
                "fiddle drum flute harp trumpet lute guitar bagpipe",
            ),
            "piece": (
                "lively mournful haunting catchy",
                "song tune melody ballad hymn waltz anthem chorus lullaby",
            ),
        },
        "verbs": (
            "tune:instrument strum/strummed:instrument pluck:instrument sing/sang:piece "
            "hum/hummed:piece compose:piece whistle:piece rehearse:piece perform:piece"
        ),
        "intransitive": {"instrument": "echo boom squeak"},
        "places": "bandstand:on,near tavern:in chapel:in stage:on ballroom:in",
        "sayings": ("music soothes the savage beast", "whoever pays the piper calls the tune"),
    },
    "building": {
        "roles": "builder mason carpenter bricklayer roofer architect",
        "groups": {
            "material": ("cracked chiselled hewn", "brick beam plank tile shingle pillar"),
            "tool": ("trusty worn bent", "hammer chisel trowel ladder mallet nail"),
            "structure": (
                "lofty arched unfinished",
                "wall roof chimney arch staircase doorway cottage",
            ),
        },
        "verbs": (
            "build/built:structure repair:structure plaster:structure measure:structure "
            "lay/laid:material stack:material trim/trimmed:material swing/swung:tool "
            "grip/gripped:tool"
        ),
        "intransitive": {"structure": "crumble sag/sagged lean"},
        "places": "workshop:in,near lumberyard:in,across brickyard:in,behind scaffold:on",
        "sayings": ("rome was not built in a day",),
    },
    "travel": {
        "roles": "traveller pilgrim driver innkeeper porter guide",
        "groups": {
            "luggage": ("dusty bulging leather", "suitcase trunk bundle knapsack valise parcel"),
            "paper": ("crumpled stamped torn", "map ticket passport postcard guidebook timetable"),
            "vehicle": ("crowded rickety creaky", "carriage train wagon stagecoach cart"),
        },
        "verbs": (
            "pack:luggage unpack:luggage lug/lugged:luggage stamp:paper read/read:paper "
            "fold:paper board:vehicle miss:vehicle hire:vehicle"
        ),
        "intransitive": {"vehicle": "depart arrive jolt"},
        "places": "inn:at,in station:at,near road:along,on bridge:across,on border:at,near",
        "sayings": ("east or west , home is best", "all roads lead to rome"),
    },
    "sport": {
        "roles": "runner athlete coach umpire goalkeeper wrestler",
        "groups": {
            "equipment": ("spare dented", "ball bat racket helmet javelin baton"),
            "game": ("exciting tense fierce", "match race game tournament contest final"),
            "team": ("winning unbeaten", "team squad club"),
        },
        "verbs": (
            "win/won/winning:game lose/lost:game play:game kick:equipment "
            "throw/threw:equipment hit/hit/hitting:equipment coach:team cheer:team join:team"
        ),
        "intransitive": {"equipment": "bounce spin/spun/spinning", "team": "score celebrate"},
        "places": "stadium:in,at pitch:on,across court:on gym:in arena:in",
        "sayings": ("it is not whether you win or lose but how you play the game",),
    },
    "forest": {
        "roles": "ranger woodcutter hunter trapper forester",
        "groups": {
            "animal": (
                "wild furry timid nocturnal",
                "fox deer:deer owl badger rabbit squirrel wolf:wolves bear hedgehog otter weasel",
            ),
            "plant": (
                "ancient tangled leafy mossy",
                "oak pine fern mushroom acorn berry birch willow thistle bramble",
            ),
            "trace": ("hidden abandoned", "nest den burrow trail footprint antler"),
        },
        "verbs": (
            "track:animal spot/spotted:animal trap/trapped:animal hunt:animal startle:animal "
            "fell:plant collect:plant climb:plant follow:trace"
        ),
        "intransitive": {
            "animal": "scurry hide/hid prowl hibernate",
            "plant": "sway rustle",
        },
        "places": "wood:in,through glade:in,across clearing:in,across thicket:in,behind hollow:in",
        "sayings": ("you cannot see the wood for the trees",),
    },
    "mining": {
        "roles": "miner overseer prospector engineer surveyor",
        "groups": {
            "mineral": (
                "glittering raw dull sparkling",
                "nugget crystal lump vein seam boulder pebble",
            ),
            "tool": ("sooty grimy", "pickaxe shovel lamp fuse wedge crowbar"),
        },
        "verbs": (
            "dig/dug/digging:mineral mine:mineral blast:mineral haul:mineral sort:mineral "
            "light/lit:tool wield:tool oil:tool"
        ),
        "intransitive": {"mineral": "glitter gleam", "tool": "flicker"},
        "places": "shaft:in,down tunnel:in,through quarry:in,at cave:in pit:in,at",
        "sayings": ("all that glitters is not gold",),
    },
    "tailoring": {
        "roles": "tailor embroiderer dressmaker weaver apprentice",
        "groups": {
            "garment": (
                "elegant embroidered woollen threadbare baggy",
                "jacket dress waistcoat gown shirt skirt cloak apron scarf:scarves glove",
            ),
            "supply": ("silken colourful", "needle thimble spool bobbin button ribbon pattern"),
        },
        "verbs": (
            "sew:garment stitch:garment hem/hemmed:garment mend:garment patch:garment "
            "iron:garment thread:supply unpick:garment"
        ),
        "intransitive": {"garment": "shrink/shrank crease"},
        "places": "parlour:in loft:in workroom:in mill:in,near",
        "sayings": ("a stitch in time saves nine",),
    },
    "painting": {
        "roles": "painter artist illustrator engraver sculptor",
        "groups": {
            "artwork": (
                "vivid abstract striking delicate",
                "portrait landscape mural sketch canvas fresco:frescoes picture drawing miniature",
            ),
            "supply": ("sticky stiff gilded", "brush easel palette pigment crayon frame sponge"),
        },
        "verbs": (
            "paint:artwork sketch:artwork frame:artwork varnish:artwork hang/hung:artwork "
            "rinse:supply dip/dipped:supply"
        ),
        "intransitive": {"artwork": "fade dry"},
        "places": "studio:in gallery:in,at attic:in museum:in,at",
        "sayings": ("a picture is worth a thousand words",),
    },
    "astronomy": {
        "roles": "astronomer stargazer astrologer",
        "groups": {
            "celestial": (
                "distant faint twinkling dazzling",
                "star planet comet moon meteor galaxy constellation eclipse orbit",
            ),
            "instrument": ("powerful polished", "telescope lens eyepiece tripod globe logbook"),
        },
        "verbs": (
            "observe:celestial catalogue:celestial name:celestial discover:celestial "
            "focus:instrument adjust:instrument aim:instrument"
        ),
        "intransitive": {"celestial": "twinkle glow shimmer"},
        "places": "observatory:in,at rooftop:on hillside:on,across",
        "sayings": ("reach for the stars",),
    },
}
