"""The demo corpus's sentences: English from word lists and templates, drawn with a seeded generator."""
import numpy as np


SUBJECTS = ('the old farmer', 'my neighbour', 'a young doctor', 'the tired pilot', 'our teacher', 'the new baker',
            'a quiet student', 'the village mayor', 'his sister', 'her grandfather', 'the museum guard',
            'a travelling musician', 'the ship captain', 'my best friend', 'the night nurse', 'a clever fox',
            'the office manager', 'an elderly painter', 'the radio host', 'a busy waiter', 'the football coach',
            'our landlord', 'the police officer', 'a shy child', 'the gardener', 'the bus driver',
            'a famous chef', 'the librarian', 'her cousin', 'the young engineer')
NAMES = ('Alice', 'Bernard', 'Clara', 'Dmitri', 'Eleanor', 'Fergus', 'Grace', 'Hamish', 'Isabel', 'Jonah',
         'Katherine', 'Leonard', 'Margaret', 'Nigel', 'Olivia', 'Patrick', 'Rosalind', 'Samuel', 'Theresa',
         'Victor', 'Wendy', 'Xavier', 'Yvonne', 'Zachary', 'Agnes', 'Duncan', 'Fiona', 'Gordon', 'Harriet', 'Morag')
VERBS = (('carry', 'carried'), ('paint', 'painted'), ('repair', 'repaired'), ('borrow', 'borrowed'),
         ('deliver', 'delivered'), ('clean', 'cleaned'), ('order', 'ordered'), ('move', 'moved'),
         ('find', 'found'), ('sell', 'sold'), ('buy', 'bought'), ('bring', 'brought'), ('hide', 'hid'),
         ('check', 'checked'), ('wrap', 'wrapped'), ('measure', 'measured'), ('return', 'returned'),
         ('open', 'opened'), ('fold', 'folded'), ('collect', 'collected'), ('lose', 'lost'), ('keep', 'kept'),
         ('describe', 'described'), ('photograph', 'photographed'), ('weigh', 'weighed'), ('polish', 'polished'))
ADJECTIVES = ('heavy', 'bright', 'ancient', 'fragile', 'enormous', 'tiny', 'crooked', 'golden', 'muddy', 'silver',
              'wooden', 'broken', 'shiny', 'dusty', 'purple', 'narrow', 'curious', 'rusty', 'velvet', 'frozen',
              'expensive', 'plain', 'striped', 'wrinkled', 'spotless', 'peculiar', 'copper', 'sturdy', 'faded', 'gentle')
OBJECTS = ('suitcase', 'lantern', 'bicycle', 'piano', 'umbrella', 'painting', 'kettle', 'ladder', 'mirror',
           'blanket', 'clock', 'basket', 'telescope', 'violin', 'carpet', 'statue', 'wheelbarrow', 'teapot',
           'notebook', 'saddle', 'envelope', 'chessboard', 'fishing rod', 'sewing machine', 'map', 'parcel',
           'bucket', 'rocking chair', 'typewriter', 'compass')
PLACES = ('to the station', 'across the river', 'into the cellar', 'behind the church', 'along the harbour',
          'up the narrow stairs', 'through the market', 'over the bridge', 'past the bakery', 'around the lake',
          'into the attic', 'down the hill', 'towards the lighthouse', 'beside the fountain', 'out of the barn',
          'under the old oak tree', 'into the garden shed', 'along the canal', 'across the square',
          'to the post office')
TIMES = ('yesterday morning', 'last Tuesday', 'before lunch', 'early on Sunday', 'in the middle of the night',
         'after the storm', 'during the holidays', 'at half past seven', 'on a rainy afternoon', 'just before dawn',
         'three weeks ago', 'after dinner', 'on the first of May', 'late last winter', 'this evening')
REASONS = ('because nobody else would do it', 'although it was raining', 'while the others were asleep',
           'since the shop was closing', 'so that the children could see it', 'before anyone noticed',
           'as the band began to play', 'even though it was far too late', 'while the kettle was boiling',
           'because the wind had dropped')
NUMBERS = ('two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'eleven', 'twelve', 'fifteen', 'twenty')
TEMPLATES = (
    '{Subject} {past} the {adjective} {object} {place} {time}.',
    '{Name} said that {subject} {past} the {adjective} {object} {place}.',
    'Did {subject} really {verb} the {adjective} {object} {time}?',
    'Please {verb} the {adjective} {object} {place}, {reason_clause}.',
    '{Time}, {subject} {past} {number} {adjective} {object}s {place}.',
    '{Name} and {name2} {past} the {object} {time}, {reason}.',
    'Nobody knew why {subject} {past} the {adjective} {object} {place} {time}.',
    'When {name} {past} the {object}, {subject} {past2} the {adjective} {object2} {place}.',
    'I think {subject} {past} the {adjective} {object} {reason}.',
    'Could you ask {name} to {verb} the {adjective} {object} {place} {time}?',
)


def sentence(rng: np.random.Generator) -> str:
    """One English sentence of about ten to twenty words, drawn from the word lists."""
    def pick(options):
        return options[rng.integers(len(options))]
    verb, past = pick(VERBS)
    name, name2 = rng.choice(NAMES, size=2, replace=False)
    fields = {
        'subject': pick(SUBJECTS), 'name': name, 'name2': name2, 'verb': verb, 'past': past,
        'past2': pick(VERBS)[1], 'adjective': pick(ADJECTIVES), 'object': pick(OBJECTS), 'object2': pick(OBJECTS),
        'place': pick(PLACES), 'time': pick(TIMES), 'reason': pick(REASONS), 'number': pick(NUMBERS),
    }
    fields['reason_clause'] = fields['reason']
    fields['Subject'] = fields['subject'][0].upper() + fields['subject'][1:]
    fields['Name'] = fields['name']
    fields['Time'] = fields['time'][0].upper() + fields['time'][1:]
    return pick(TEMPLATES).format(**fields)


def sentences(rng: np.random.Generator, count: int) -> list:
    """count distinct sentences."""
    chosen, seen = [], set()
    while len(chosen) < count:
        text = sentence(rng)
        if text not in seen:
            seen.add(text)
            chosen.append(text)
    return chosen
