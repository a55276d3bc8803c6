"""tables.glue writes what myst-nb's glue writes, so `{glue:text}` finds the value in the book."""
import pytest

from resnet_book import tables


def test_glue_emits_myst_nb_records_with_the_value_as_text(monkeypatch):
    import IPython.display
    from myst_nb.core.variables import format_plain_text

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda data, raw, metadata: shown.append((data, metadata)))
    tables.glue("ch9", {"gap": "8.1", "seeds": 3})
    assert [m["scrapbook"] for _, m in shown] == [{"name": "ch9-gap", "mime_prefix": tables.GLUE_PREFIX},
                                                  {"name": "ch9-seeds", "mime_prefix": tables.GLUE_PREFIX}]
    texts = [d[tables.GLUE_PREFIX + "text/plain"] for d, _ in shown]
    assert [format_plain_text(t, "") for t in texts] == ["8.1", "3"]


def test_glue_rejects_a_missing_prefix():
    with pytest.raises(ValueError, match="prefix"):
        tables.glue("", {"a": 1})
