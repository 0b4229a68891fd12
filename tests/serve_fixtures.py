"""Tiny untrained exports of every family for the serving tests (imported by them; tests/ is on sys.path).

Serving is about moving inputs and outputs faithfully, not about accuracy,
so the models are built untrained with small settings and exported without
the clean-process verification (`zoo.export`'s own tests cover that).
"""

from __future__ import annotations

import pathlib

EN = ["A man is riding a bike.", "Two dogs play in the snow.", "A woman sings.", "Children run on the beach."]
DE = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee.", "Eine Frau singt.", "Kinder laufen am Strand."]
WORDS = "a wonderful superb moving film awful boring dull waste the plot actor was and of".split()


def export_image(base: pathlib.Path) -> pathlib.Path:
    """cifar10_cnn (filters 4/8/8) -> base/cifar10_cnn/N."""
    import zoo
    from applications.image.data import CIFAR10_CLASSES

    model = zoo.create_model("cifar10_cnn", filters=(4, 8, 8), dense_units=8)
    return zoo.export_model(model, name="cifar10_cnn", base_dir=base, verify=False,
                            info={"class_names": list(CIFAR10_CLASSES)})


def export_text(base: pathlib.Path) -> pathlib.Path:
    """imdb_bilstm_attention (a 20-token vocabulary) -> base/imdb_bilstm_attention/N."""
    import zoo
    from applications.text.data import TextVectorizer

    vectorizer = TextVectorizer(max_tokens=len(WORDS) + 2, sequence_length=16, vocabulary=["", "[UNK]", *WORDS])
    model = zoo.create_model("imdb_bilstm_attention", vocabulary_size=len(WORDS) + 2, embedding_dim=8, units=4)
    return zoo.export_model(model, name="imdb_bilstm_attention", base_dir=base, verify=False, preprocessor=vectorizer,
                            info={"class_names": ["neg", "pos"]})


def export_translation(base: pathlib.Path) -> pathlib.Path:
    """multi30k_transformer (vocabularies of 60 learned on four sentences) -> base/multi30k_transformer/N."""
    import zoo
    from applications.translation.data import TranslationTokenizers, learn_vocabulary

    size = 60
    tok = TranslationTokenizers(learn_vocabulary(EN, size), learn_vocabulary(DE, size), max_length=12)
    model = zoo.create_model("multi30k_transformer", source_vocabulary_size=size, target_vocabulary_size=size,
                             max_length=12, embedding_dim=16, num_layers=1, num_heads=2, intermediate_dim=16)
    return zoo.export_model(model, name="multi30k_transformer", base_dir=base, verify=False, preprocessor=tok, info={})


def export_speech(base: pathlib.Path) -> pathlib.Path:
    """fsdd_ctc (dim 16, one block) -> base/fsdd_ctc/N."""
    import zoo
    from applications.speech.data import DIGIT_WORDS, SAMPLE_RATE

    model = zoo.create_model("fsdd_ctc", dim=16, num_layers=1, num_heads=2, intermediate_dim=16, conv_channels=4,
                             num_mel_bins=16, fft_length=256)
    return zoo.export_model(model, name="fsdd_ctc", base_dir=base, verify=False,
                            info={"tokens": list(DIGIT_WORDS), "sample_rate": SAMPLE_RATE})


EXPORTERS = {"image": export_image, "text": export_text, "translation": export_translation, "speech": export_speech}
