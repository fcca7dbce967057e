"""Word lists of the synthetic intent→prompt task: what users ask for and the terms that fit it.

An intent is ``MODIFIER SUBJECT ARTIFACT`` ("cozy cabin wallpaper", "holiday sale flyer"). Each part
carries related terms; an on-topic output draws its content from the intent's terms, an off-topic one
from other intents' terms. The relevance metric of the demo task is defined over these lists.
"""
from __future__ import annotations


def _table(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.strip().splitlines():
        key, terms = line.split(":", 1)
        out[key.strip()] = [t.strip() for t in terms.split(";") if t.strip()]
    return out


SUBJECTS = _table("""
cabin: log cabin; pine forest; stone fireplace; snowfall; wooden porch; mountain lake; wool blanket
sale: discount badge; price tags; shopping bags; limited offer; storefront window; bold percent sign
coffee shop: latte art; espresso machine; coffee beans; barista; ceramic mugs; chalkboard menu
bakery: fresh croissants; sourdough loaf; flour dust; pastry case; cinnamon rolls; rolling pin
beach: golden sand; turquoise waves; palm trees; seashells; beach umbrella; sunset horizon
city skyline: glass towers; city lights; rooftop view; busy streets; skyscrapers; river bridge
garden: flower beds; watering can; green leaves; blooming roses; stone path; butterflies
wedding: bridal bouquet; white roses; wedding rings; lace veil; champagne toast; string lights
birthday: balloons; birthday cake; confetti; party hats; gift boxes; candles
yoga studio: yoga mats; meditation pose; bamboo floor; calm breathing; incense; plants
fitness gym: dumbbells; barbell rack; running shoes; sweat towel; workout plan; protein shake
bookstore: stacked books; reading nook; wooden shelves; open pages; bookmarks; armchair
space: distant galaxies; astronaut; nebula clouds; rocket launch; planets; starfield
ocean: deep blue water; coral reef; whales; ocean waves; sea foam; lighthouse
forest: tall trees; mossy rocks; sunbeams; ferns; hiking trail; morning mist
mountain: snowy peaks; alpine meadow; rocky cliffs; mountain trail; glacier; summit flag
pizza restaurant: wood fired oven; melted cheese; pepperoni slices; basil leaves; pizza box; red checkered cloth
sushi bar: salmon nigiri; chopsticks; soy sauce; bamboo mat; wasabi; sushi chef
farmers market: fresh produce; wicker baskets; market stalls; organic vegetables; honey jars; sunflowers
music festival: crowd; stage lights; electric guitar; festival tents; wristbands; speakers
jazz night: saxophone; smoky club; double bass; dim spotlight; vinyl records; piano keys
tech startup: laptops; code on screen; open office; whiteboard sketches; rocket icon; team meeting
real estate: family house; front yard; open house sign; house keys; modern kitchen; curb appeal
pet shop: puppies; kittens; chew toys; pet food bowls; leashes; fish tank
dog grooming: fluffy dog; grooming table; bubble bath; pet brush; bow tie; clean paws
cat cafe: sleepy cats; cat tower; cozy cushions; cappuccino; paw prints; window seat
halloween party: carved pumpkins; bats; haunted house; candy corn; witch hat; full moon
christmas market: wooden stalls; mulled wine; fairy lights; gingerbread; snowflakes; pine garlands
new year: fireworks; midnight clock; champagne glasses; glitter; countdown; party crowd
spring festival: cherry blossoms; paper lanterns; pastel flowers; kites; fresh grass; sunshine
autumn harvest: pumpkins; hay bales; apple baskets; maple leaves; corn stalks; warm cider
science fair: beakers; volcano model; microscope; lab coat; posters; circuit board
school: backpacks; chalkboard; pencils; classroom; school bus; notebooks
graduation: graduation caps; diplomas; gowns; tassels; proud families; confetti toss
travel agency: passport; airplane window; suitcases; world map; boarding pass; palm beach
road trip: open highway; vintage car; map; sunglasses; desert road; gas station
camping: tent; campfire; marshmallows; starry sky; sleeping bags; lantern
fishing: fishing rod; wooden dock; lake at dawn; tackle box; rowboat; trout
car wash: soap foam; shiny car; pressure hose; sponges; water splash; clean wheels
bike shop: road bikes; helmets; bike chain; repair stand; cycling gloves; tires
flower shop: tulips; peonies; bouquets; flower buckets; ribbons; florist
wine tasting: wine glasses; vineyard rows; oak barrels; cheese board; grapes; cork
craft beer: beer taps; hops; pint glasses; brewery tanks; foam; barley
tea house: teapot; green tea; tea leaves; porcelain cups; tatami; steam
ice cream parlor: waffle cones; sprinkles; sundae; pastel scoops; cherry on top; freezer case
dental clinic: bright smile; toothbrush; dental chair; clean teeth; mint; friendly dentist
law firm: scales of justice; leather books; handshake; office desk; gavel; briefcase
charity run: runners; finish line; race bibs; water station; cheering crowd; medal
gaming tournament: game controllers; neon arena; headsets; leaderboard; trophy; gaming chairs
art gallery: framed paintings; white walls; sculptures; spotlights; visitors; canvas
photography studio: camera lens; softbox lights; tripod; backdrop; model pose; film rolls
hiking club: hiking boots; trail map; backpack; compass; ridge view; water bottle
robotics: robot arm; sensors; circuit boards; metal gears; servo motors; blueprint
dinosaur: t rex; fossils; volcano; jungle ferns; dinosaur eggs; footprints
unicorn: rainbow mane; sparkles; clouds; magic horn; stars; candy colors
dragon: scales; fire breath; castle tower; treasure hoard; wings; smoke
castle: stone walls; turrets; drawbridge; banners; moat; knights
farm: red barn; tractor; cows; hay field; chickens; windmill
desert: sand dunes; cactus; camel; blazing sun; mirage; canyon
rainforest: parrots; waterfall; vines; jaguar; giant leaves; humid mist
arctic: icebergs; polar bear; northern lights; igloo; penguins; frozen sea
""")

MODIFIERS = _table("""
cozy: warm light; soft textures; knitted throw; candlelight; hot cocoa
holiday: festive ribbons; gift wrap; seasonal greetings; red and green; twinkle lights
minimalist: clean lines; negative space; simple shapes; muted palette; plenty of whitespace
vintage: faded colors; retro typography; film grain; old paper; sepia tones
neon: glowing signs; electric pink; night city glow; cyan light; dark background
summer: bright sunshine; lemonade; blue sky; sun hats; ice cubes
spooky: fog; creaky doors; shadows; cobwebs; moonlight
elegant: gold accents; serif lettering; marble texture; black and gold; refined details
playful: bouncy shapes; bright colors; cartoon characters; doodles; smiling faces
rustic: weathered wood; burlap; mason jars; barn doors; earthy tones
futuristic: holograms; chrome surfaces; sleek interfaces; glowing circuits; flying cars
tropical: hibiscus flowers; coconuts; monstera leaves; flamingos; teal water
winter: frost; icicles; snow drifts; scarves; breath clouds
romantic: soft pink; rose petals; candlelit dinner; hearts; love letters
corporate: blue palette; charts; headshots; professional layout; company logo
retro: eighties grid; cassette tapes; chunky fonts; sunset gradient; arcade
pastel: baby blue; mint green; lavender; peach; soft gradients
bold: high contrast; heavy type; strong colors; big shapes; striking layout
festive: streamers; garlands; celebration; cheerful crowd; sparkling lights
serene: still water; quiet dawn; gentle breeze; soft clouds; calm tones
dreamy: hazy glow; floating petals; soft focus; pastel sky; stardust
luxury: velvet; diamonds; gold foil; champagne; premium finish
kids: crayons; toy blocks; cartoon animals; primary colors; giggles
eco friendly: recycled paper; green leaves; solar panels; earth tones; reusable bags
boho: macrame; dried flowers; rattan; terracotta; fringe
grunge: distressed texture; torn paper; dark palette; spray paint; gritty
scandinavian: light wood; white walls; hygge; wool rugs; simple furniture
gothic: dark arches; stained glass; candles; ravens; wrought iron
whimsical: fairy dust; curly shapes; tiny doors; mushrooms; storybook
industrial: exposed brick; steel beams; edison bulbs; concrete; pipes
""")

ARTIFACTS = _table("""
flyer: headline; call to action; a4 layout; event details; printable
wallpaper: desktop background; 4k resolution; wide angle; lock screen; seamless
poster: large print; big title; event poster; wall art; bold header
banner: web banner; wide format; header strip; hero section; slogan
logo: vector mark; simple icon; brand identity; emblem; monogram
invitation: rsvp card; date and venue; save the date; envelope; printed card
instagram post: square format; social media; caption space; feed post; hashtags
book cover: title text; author name; paperback; front cover; book jacket
greeting card: folded card; handwritten message; card front; wishes; envelope
menu: dish list; prices; menu board; specials; restaurant menu
presentation slide: slide deck; title slide; bullet points; widescreen slide; keynote
t-shirt design: shirt print; graphic tee; screen print; front print; apparel
sticker: die cut sticker; vinyl sticker; sticker sheet; cute icon; glossy finish
business card: contact details; card layout; name and title; two sided card; qr code
youtube thumbnail: clickable thumbnail; big text; video cover; face closeup; bright overlay
album cover: record sleeve; vinyl cover; band name; square artwork; cover art
newsletter header: email header; masthead; newsletter banner; issue number; subscribe
phone case: phone cover; case print; back design; protective case; pattern wrap
""")

STYLES = [
    "watercolor", "oil painting", "flat illustration", "3d render", "photorealistic", "line art",
    "pixel art", "paper cut", "vector art", "digital painting", "ink sketch", "gouache",
    "isometric", "low poly", "studio photo", "collage", "risograph print", "charcoal drawing",
]
QUALITIES = [
    "highly detailed", "soft lighting", "sharp focus", "cinematic lighting", "8k", "golden hour",
    "dramatic shadows", "vibrant colors", "natural light", "symmetrical composition",
    "shallow depth of field", "trending artwork", "wide shot", "close up",
]
SEARCH_SUFFIXES = ["ideas", "template", "free download", "hd", "inspiration", "examples", "design",
                   "printable", "aesthetic", "near me", "2026", "best", "cheap", "diy", "high resolution"]
TAG_EXTRAS = ["template", "editable", "trending", "seasonal", "premium", "free", "layout", "asset",
              "mockup", "font pairing", "color palette", "icon set"]
