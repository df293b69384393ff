"""captioning keeps copies of mlcore's names it needs before torch may be imported: they must stay the same."""

from captioning import model_facts
from mlcore import encoder, model


def test_the_web_side_copies_of_mlcore_names_agree_with_mlcore():
    assert model_facts.CLIPCAP_ORIGIN == model.CLIPCAP_ORIGIN
    assert model_facts.LOCAL_CLIP_PREFIX == encoder.LOCAL_DIR_PREFIX
