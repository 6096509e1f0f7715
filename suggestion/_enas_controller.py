"""ENAS's LSTM controller (Pham et al., 2018, as upstream's ``nas/enas/Controller.py``) in
PyTorch, and the replayable training that makes it a pure function of the trial history.

The policy: an LSTM steps through the layers. At layer ``i`` it emits softmax logits over
the op ids (divided by the temperature, squashed by ``tanh_const * tanh``), the sampled op
is embedded and fed back, and for ``i > 0`` an attention over the earlier layers' anchors
gives one two-way logit per earlier layer: the skip connections. Training is REINFORCE:
``loss = -log p(architecture) * (reward - baseline) + skip_weight * KL(skip rate || target)``,
the reward plus ``entropy_weight`` times the policy's entropy, the baseline a moving average
of the rewards (``baseline_decay``), Adam at ``learning_rate``.

Where upstream trains on fresh samples all rewarded with the mean of every succeeded trial
(it cannot tell good architectures from bad), this one trains on the observed pairs: the
architectures trials ran and the objective each reached.

``ReplayedPolicy.fit`` makes the state a function of the history alone. Finished trials are
ordered by (start order, name); round ``k`` runs ``train_steps`` Adam steps on the first
``k * round_size`` of them (the rest get a provisional round). A finish that lands inside
that order (a trial that started earlier finished later) replays from the last checkpoint
before it, so a long-lived instance and one rebuilt from the whole history after a restart
hold the same weights. Only CPU and seeded
generators are used, so the same history gives the same suggestions.

Imported only when torch is installed (the ``nas`` extra).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn

__all__ = ["ControllerSettings", "Policy", "ReplayedPolicy", "Observed"]

log = logging.getLogger(__name__)

Architecture = list[list[int]]
Observed = tuple[tuple[float, str], Architecture, float]  # (sort key, architecture, reward)

_KEEP_CHECKPOINTS = 8  # besides the initial state; a finish further back replays from there


@dataclass(frozen=True)
class ControllerSettings:
    hidden_size: int = 64
    temperature: float | None = 5.0
    tanh_const: float | None = 2.25
    entropy_weight: float | None = 1e-5
    baseline_decay: float = 0.999
    learning_rate: float = 5e-5
    skip_target: float = 0.4
    skip_weight: float | None = 0.8
    train_steps: int = 50
    log_every_steps: int = 10


@dataclass
class _Pass:
    """What one run of the policy over a batch of architectures gives."""

    architectures: list[Architecture]
    log_prob: torch.Tensor      # [batch]
    entropy: torch.Tensor       # [batch]
    skip_penalty: torch.Tensor  # [batch]
    skip_count: torch.Tensor    # [batch]


class Policy(nn.Module):
    """The controller's weights and its one pass: sampling (with a generator) or scoring
    given architectures (teacher forcing), over a batch."""

    def __init__(self, num_layers: int, num_operations: int, settings: ControllerSettings, seed: int) -> None:
        super().__init__()
        self.num_layers = num_layers
        self.num_operations = num_operations
        self.settings = settings
        h = settings.hidden_size
        init = torch.Generator().manual_seed(seed)

        def weight(*shape: int) -> nn.Parameter:
            # Upstream's initialiser: uniform in [-0.01, 0.01].
            return nn.Parameter(torch.rand(*shape, generator=init) * 0.02 - 0.01)

        self.w_lstm = weight(2 * h, 4 * h)
        self.g_emb = weight(1, h)
        self.w_emb = weight(num_operations, h)
        self.w_soft = weight(h, num_operations)
        self.attn_w_1 = weight(h, h)
        self.attn_w_2 = weight(h, h)
        self.attn_v = weight(h, 1)

    def _lstm(self, x: torch.Tensor, c: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        i, f, o, g = torch.matmul(torch.cat([x, h], dim=1), self.w_lstm).chunk(4, dim=1)
        c = torch.sigmoid(i) * torch.tanh(g) + torch.sigmoid(f) * c
        return c, torch.sigmoid(o) * torch.tanh(c)

    def _squash(self, logits: torch.Tensor) -> torch.Tensor:
        if self.settings.temperature is not None:
            logits = logits / self.settings.temperature
        if self.settings.tanh_const is not None:
            logits = self.settings.tanh_const * torch.tanh(logits)
        return logits

    def op_logits(self) -> torch.Tensor:
        """The first layer's op logits (what the policy prefers before any choice)."""
        h = self.settings.hidden_size
        zeros = torch.zeros(1, h)
        _, hidden = self._lstm(self.g_emb, zeros, zeros)
        return self._squash(torch.matmul(hidden, self.w_soft))[0]

    @staticmethod
    def encode(architectures: Sequence[Architecture]) -> list[torch.Tensor]:
        """Per layer, the batch's choices: op ids [B] then the skip flags [B, layer]."""
        layers = len(architectures[0])
        out = [torch.tensor([arc[0][0] for arc in architectures])]
        out += [torch.tensor([arc[i] for arc in architectures]) for i in range(1, layers)]
        return out

    def run(self, batch: int = 1, *, given: Sequence[torch.Tensor] | None = None,
            generator: torch.Generator | None = None) -> _Pass:
        """Sample ``batch`` architectures with ``generator``, or score ``given`` ones
        (``encode``d; the result's ``architectures`` is then empty)."""
        if given is not None:
            batch = int(given[0].shape[0])
        h = self.settings.hidden_size
        c = hidden = torch.zeros(batch, h)
        inputs = self.g_emb.expand(batch, h)
        skip_target = torch.tensor([1.0 - self.settings.skip_target, self.settings.skip_target])
        log_prob = torch.zeros(batch)
        entropy = torch.zeros(batch)
        skip_penalty = torch.zeros(batch)
        skip_count = torch.zeros(batch)
        anchors: list[torch.Tensor] = []
        anchors_w: list[torch.Tensor] = []
        chosen: list[list[list[int]]] = [[] for _ in range(batch)]
        for layer in range(self.num_layers):
            c, hidden = self._lstm(inputs, c, hidden)
            logits = self._squash(torch.matmul(hidden, self.w_soft))            # [B, ops]
            if given is not None:
                op = given[layer][:, 0] if layer > 0 else given[0]
            else:
                op = torch.multinomial(torch.softmax(logits, dim=1), 1, generator=generator)[:, 0]
            logp = torch.log_softmax(logits, dim=1)
            log_prob = log_prob + logp.gather(1, op[:, None])[:, 0]
            entropy = entropy - (logp.exp() * logp).sum(dim=1).detach()
            if given is None:
                for b in range(batch):
                    chosen[b].append([int(op[b])])
            inputs = self.w_emb[op]
            c, hidden = self._lstm(inputs, c, hidden)
            if layer > 0:
                prev_w = torch.stack(anchors_w, dim=1)                          # [B, layer, h]
                query = torch.tanh(torch.matmul(hidden, self.attn_w_2)[:, None, :] + prev_w)
                query = torch.matmul(query, self.attn_v)                        # [B, layer, 1]
                skip_logits = self._squash(torch.cat([-query, query], dim=2))  # [B, layer, 2]
                if given is not None:
                    skips = given[layer][:, 1:]
                else:
                    probs = torch.softmax(skip_logits, dim=2).reshape(-1, 2)
                    skips = torch.multinomial(probs, 1, generator=generator).reshape(batch, layer)
                skip_logp = torch.log_softmax(skip_logits, dim=2)
                log_prob = log_prob + skip_logp.gather(2, skips[:, :, None])[:, :, 0].sum(dim=1)
                entropy = entropy - (skip_logp.exp() * skip_logp).sum(dim=(1, 2)).detach()
                # Upstream's skip penalty: sigmoid of both logits against (1 - target, target).
                skip_prob = torch.sigmoid(skip_logits)
                skip_penalty = skip_penalty + (skip_prob * torch.log(skip_prob / skip_target)).sum(dim=(1, 2))
                flags = skips.float()
                skip_count = skip_count + flags.sum(dim=1)
                if given is None:
                    for b in range(batch):
                        chosen[b][layer].extend(int(v) for v in skips[b])
                inputs = torch.matmul(flags[:, None, :], torch.stack(anchors, dim=1))[:, 0, :]
                inputs = inputs / (1.0 + flags.sum(dim=1, keepdim=True))
            else:
                inputs = self.g_emb.expand(batch, h)
            anchors.append(hidden)
            anchors_w.append(torch.matmul(hidden, self.attn_w_1))
        if self.num_layers > 1:
            skip_penalty = skip_penalty / (self.num_layers - 1)  # upstream: mean over layers
        return _Pass(chosen if given is None else [], log_prob, entropy, skip_penalty, skip_count)


class ReplayedPolicy:
    """A policy trained round by round on observed (architecture, reward) pairs.

    A round closes every ``round_size`` finished trials (the experiment's parallel trial
    count: about one round per batch, as upstream trains once per GetSuggestions call) and
    is checkpointed; trials beyond the last closed round get a provisional round on top of
    it that is redone when more finish. A history that changes before the end (a trial that
    started earlier finished later) replays from the last checkpoint before the change."""

    def __init__(self, num_layers: int, num_operations: int, settings: ControllerSettings, seed: int,
                 round_size: int = 1) -> None:
        self.num_layers = num_layers
        self.num_operations = num_operations
        self.settings = settings
        self.seed = seed
        self.round_size = max(1, round_size)
        self.rounds = 0  # rounds trained, provisional one included
        self.policy = Policy(num_layers, num_operations, settings, seed)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=settings.learning_rate)
        self.baseline: float | None = None
        # history entries consumed -> (policy weights, optimizer state, baseline, rounds)
        self._checkpoints: dict[int, tuple[dict[str, Any], dict[str, Any], float | None, int]] = {}
        self._save(0)
        self._closed: list[Observed] = []   # the history the checkpoints were trained on
        self._fitted: list[Observed] | None = []

    def _save(self, consumed: int) -> None:
        self._checkpoints[consumed] = (copy.deepcopy(self.policy.state_dict()),
                                       copy.deepcopy(self.optimizer.state_dict()), self.baseline, self.rounds)
        for key in sorted(k for k in self._checkpoints if k)[:-_KEEP_CHECKPOINTS]:
            del self._checkpoints[key]

    def _restore(self, consumed: int) -> int:
        """Load the last checkpoint at or before ``consumed``; return where it is."""
        best = max(k for k in self._checkpoints if k <= consumed)
        weights, optim, baseline, rounds = self._checkpoints[best]
        self.policy.load_state_dict(copy.deepcopy(weights))
        self.optimizer.load_state_dict(copy.deepcopy(optim))
        self.baseline, self.rounds = baseline, rounds
        for key in [k for k in self._checkpoints if k > best]:
            del self._checkpoints[key]
        return best

    def fit(self, history: Sequence[Observed]) -> None:
        """Bring the policy to the state the ordered ``history`` defines."""
        history = sorted(history, key=lambda item: item[0])
        if history == self._fitted:
            return
        common = 0
        for old, new in zip(self._closed, history):
            if old != new:
                break
            common += 1
        closed = len(history) // self.round_size * self.round_size
        start = self._restore(min(common, closed))
        for end in range(start + self.round_size, closed + 1, self.round_size):
            self._round(history[:end])
            self._save(end)
        self._closed = list(history[:closed])
        if closed < len(history):
            self._round(history)  # provisional: redone from the checkpoint next time
        self._fitted = list(history)

    def _round(self, pairs: Sequence[Observed]) -> None:
        s = self.settings
        architectures = Policy.encode([arc for _, arc, _ in pairs])
        rewards = torch.tensor([reward for _, _, reward in pairs], dtype=torch.float32)
        self.rounds += 1
        if self.baseline is None:
            # The moving average starts at the first rewards seen, not at 0: from 0 every
            # early architecture would look better than average and be reinforced.
            self.baseline = float(rewards.mean())
        for step in range(1, s.train_steps + 1):
            out = self.policy.run(given=architectures)
            reward = rewards
            if s.entropy_weight is not None:
                reward = reward + s.entropy_weight * out.entropy
            self.baseline -= (1 - s.baseline_decay) * (self.baseline - float(reward.mean()))
            loss = (-out.log_prob * (reward - self.baseline)).mean()
            if s.skip_weight is not None:
                loss = loss + s.skip_weight * out.skip_penalty.mean()
            self.optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            self.optimizer.step()
            if step % s.log_every_steps == 0:
                log.debug("controller round %d step %d: loss %.4f, entropy %.4f, baseline %.4f",
                          self.rounds, step, float(loss.detach()), float(out.entropy.mean()), self.baseline)

    def sample(self, n: int, seed: int) -> list[Architecture]:
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            return self.policy.run(n, generator=generator).architectures
