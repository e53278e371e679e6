"""The unified label taxonomy and the mapping from every dataset's native codes.

Unified order (index = ``label`` everywhere in the project, and the ``ClassLabel`` names of the shards)::

    0 neutral, 1 anger, 2 contempt, 3 disgust, 4 fear, 5 happiness, 6 sadness, 7 surprise

Native codes, as the datasets' own documentation and reference loaders give them:

=========  ==========================================================================
dataset    native code -> unified name
=========  ==========================================================================
FER2013    0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral
CK+        Emotion/*.txt: 0 neutral, 1 anger, 2 contempt, 3 disgust, 4 fear, 5 happy,
           6 sadness, 7 surprise; CK+48 folder names anger, contempt, disgust, fear,
           happy, sadness, surprise (and neutral where a copy has it)
RAF-DB     list_patition_label.txt: 1 surprise, 2 fear, 3 disgust, 4 happiness,
           5 sadness, 6 anger, 7 neutral
JAFFE      file-name codes AN anger, DI disgust, FE fear, HA happy, NE neutral,
           SA sadness, SU surprise
KDEF       file-name codes AF afraid, AN angry, DI disgusted, HA happy, NE neutral,
           SA sad, SU surprised
=========  ==========================================================================
"""

from __future__ import annotations

LABEL_NAMES: tuple[str, ...] = (
    "neutral",
    "anger",
    "contempt",
    "disgust",
    "fear",
    "happiness",
    "sadness",
    "surprise",
)
LABEL_INDEX: dict[str, int] = {name: i for i, name in enumerate(LABEL_NAMES)}

NATIVE_TO_UNIFIED: dict[str, dict[str, str]] = {
    "fer2013": {
        "0": "anger", "1": "disgust", "2": "fear", "3": "happiness",
        "4": "sadness", "5": "surprise", "6": "neutral",
    },
    # FER2013's image-folder edition (Kaggle "FER-2013"): one folder per class
    "fer2013_folders": {
        "angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happiness",
        "sad": "sadness", "surprise": "surprise", "neutral": "neutral",
    },
    "ckplus": {
        "0": "neutral", "1": "anger", "2": "contempt", "3": "disgust",
        "4": "fear", "5": "happiness", "6": "sadness", "7": "surprise",
    },
    # CK+48 folder layout: one folder per class
    "ckplus48": {
        "neutral": "neutral", "anger": "anger", "contempt": "contempt", "disgust": "disgust",
        "fear": "fear", "happy": "happiness", "sadness": "sadness", "surprise": "surprise",
    },
    "rafdb": {
        "1": "surprise", "2": "fear", "3": "disgust", "4": "happiness",
        "5": "sadness", "6": "anger", "7": "neutral",
    },
    "jaffe": {
        "AN": "anger", "DI": "disgust", "FE": "fear", "HA": "happiness",
        "NE": "neutral", "SA": "sadness", "SU": "surprise",
    },
    "kdef": {
        "AF": "fear", "AN": "anger", "DI": "disgust", "HA": "happiness",
        "NE": "neutral", "SA": "sadness", "SU": "surprise",
    },
}

UNIFIED_TO_NATIVE: dict[str, dict[str, str]] = {
    scheme: {unified: native for native, unified in mapping.items()}
    for scheme, mapping in NATIVE_TO_UNIFIED.items()
}


class UnknownLabelError(ValueError):
    """A native label code that the dataset's scheme does not define."""


def to_unified(scheme: str, native: str | int) -> int:
    """Unified label index of a native code of ``scheme`` (a key of :data:`NATIVE_TO_UNIFIED`).

    Raises :class:`UnknownLabelError` for a code the scheme does not define.
    """
    code = str(native).strip()
    try:
        return LABEL_INDEX[NATIVE_TO_UNIFIED[scheme][code]]
    except KeyError:
        known = ", ".join(sorted(NATIVE_TO_UNIFIED[scheme]))
        raise UnknownLabelError(f"{scheme}: unknown label code {code!r} (known: {known})") from None
