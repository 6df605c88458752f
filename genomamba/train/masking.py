"""BERT-style masking for masked-language-model pretraining (numpy; the model sees torch tensors).

Of the *real base* positions (A, C, G, T) a fraction ``mask_prob`` is chosen to be predicted; of
those, 80% are replaced by ``[MASK]``, 10% by a random base drawn from A/C/G/T, and 10% are left
unchanged (Devlin et al. 2019, §3.1). N and special tokens (PAD, ...) are never chosen, so they
never count in the loss: an all-N crop has no label and contributes nothing (the model's loss is
0, not NaN, when a batch has no label at all).
"""

from __future__ import annotations

import numpy as np

from genomamba.alphabet import ACGT_IDS, MASK_ID

IGNORE_INDEX = -100  # the label of positions that do not count (same value as the model's)


def bert_mask(
    ids: np.ndarray,
    rng: np.random.Generator,
    mask_prob: float = 0.15,
    mask_token_frac: float = 0.8,
    random_token_frac: float = 0.1,
) -> tuple[np.ndarray, np.ndarray]:
    """Mask a batch of token ids.

    Args:
        ids: uint8 or integer token ids, shape ``(batch, L)``.
        rng: the generator drawing which positions are masked and how (its state is part of the
            training state, so a resumed run masks exactly as an uninterrupted one).
        mask_prob: probability that a real base is selected for prediction.
        mask_token_frac, random_token_frac: shares of the selected positions replaced by
            ``[MASK]`` and by a random base; the rest keep their token.

    Returns:
        ``(inputs, labels)``, both int64 of shape ``(batch, L)``: ``inputs`` the corrupted ids,
        ``labels`` the original id at selected positions and ``IGNORE_INDEX`` elsewhere.

    Raises:
        ValueError: probabilities outside [0, 1] or fractions summing to more than 1.
    """
    if not 0.0 <= mask_prob <= 1.0:
        raise ValueError(f"mask_prob must lie in [0, 1], got {mask_prob}")
    if mask_token_frac < 0 or random_token_frac < 0 or mask_token_frac + random_token_frac > 1.0:
        raise ValueError("mask_token_frac and random_token_frac must be >= 0 and sum to at most 1")
    ids = np.asarray(ids)
    inputs = ids.astype(np.int64)
    real = np.isin(ids, ACGT_IDS)
    # Draw every random number for every position, whatever the content, so the generator
    # advances by the same amount per batch (simpler to reason about when resuming).
    select_u = rng.random(ids.shape)
    how_u = rng.random(ids.shape)
    random_bases = rng.choice(ACGT_IDS, size=ids.shape).astype(np.int64)
    selected = real & (select_u < mask_prob)
    labels = np.where(selected, inputs, IGNORE_INDEX)
    to_mask = selected & (how_u < mask_token_frac)
    to_random = selected & (how_u >= mask_token_frac) & (how_u < mask_token_frac + random_token_frac)
    inputs[to_mask] = MASK_ID
    inputs[to_random] = random_bases[to_random]
    return inputs, labels
