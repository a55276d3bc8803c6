import pytest

from resnet_book.identity import fit_mapping, make_stack


def test_zero_init_residual_stack_is_the_identity_from_the_start():
    fit = fit_mapping("residual, zero-init", 0.0, steps=20, blocks=3, width=8)
    assert max(fit.relative_error) == 0.0 and fit.weight_change == 0.0


def test_plain_stack_struggles_with_the_identity():
    plain = fit_mapping("plain", 0.0, steps=100, blocks=4, width=8)
    assert plain.relative_error[-1] > 0.1  # far from a fit after 100 Adam steps
    again = fit_mapping("plain", 0.0, steps=100, blocks=4, width=8)
    assert again.relative_error == plain.relative_error  # seeded


def test_bad_variant():
    with pytest.raises(ValueError, match="allowed: plain, residual"):
        make_stack(3, 8, "highway")


def test_fit_table_and_facts():
    from resnet_book.identity import FitResult, fit_facts, fit_table

    fits = {0.0: [FitResult("plain", 0.0, [1, 200], [2.0, 1.0512], 0.123),
                  FitResult("residual, zero-init", 0.0, [1, 200], [0.0, 0.0], 0.0)],
            0.5: [FitResult("residual, zero-init", 0.5, [1, 200], [0.4, 0.0581], 0.69)]}
    table = fit_table(fits)
    assert table.rows[0] == ["0", "plain", "2", "1.05", "12"]
    assert table.columns[3] == "error at step 200" and table.column("alpha") == ["0", "0", "0.5"]
    facts = fit_facts(fits)
    assert facts["a0-plain-end"] == "1.05" and facts["a0-residual-zero-init-moved"] == "0"
    assert facts["a0.5-residual-zero-init-end"] == "0.0581" and facts["a0.5-residual-zero-init-moved"] == "69"
