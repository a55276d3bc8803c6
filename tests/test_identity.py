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
