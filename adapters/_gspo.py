"""The GSPO-token weighting: a small GRU policy learns term weights from gradient-norm ratios.

Found for :class:`~entities.GspoTokenWeighting` through the entry point ``gspo_token`` of
``complexity_from_constraints.weightings``, so
``RelaxConfig(weighting=GspoTokenWeighting())`` records it like any other weighting
and a re-run rebuilds it from the config (same seed, same weights). torch is
imported only when the weighting is built.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from complexity_from_constraints.entities import GspoTokenWeighting
from complexity_from_constraints.projectors import AbstractWeighting, WeightingContext

from ._torch_backend import import_torch


def _policy(torch: Any, vocab: int, hidden: int, buckets: int) -> Any:
    nn = torch.nn

    class Policy(nn.Module):
        """Embedding → GRU → linear head over the weight buckets."""

        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(vocab, hidden)
            self.gru = nn.GRU(hidden, hidden, batch_first=True)
            self.head = nn.Linear(hidden, buckets)

        def forward(self, tokens, state=None):
            out, state = self.gru(self.embed(tokens), state)
            return self.head(out), state

    return Policy()


class GspoToken(AbstractWeighting):
    """The weighting :class:`~entities.GspoTokenWeighting` describes (see its docstring for the maths).

    ``details`` of each change: ``loss``, ``mean_reward``, ``mean_ratio``,
    ``clipped_fraction`` of the GSPO update that preceded it.
    """

    name = "gspo_token"

    def __init__(self, config: GspoTokenWeighting):
        super().__init__()
        torch = self.torch = import_torch()
        self.config, self.every = config, config.every
        self.bos = config.buckets  # prompt tokens are buckets 0..B-1; one start-of-answer token
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.policy = _policy(torch, config.buckets + 1, config.hidden, config.buckets).double()
        self.reference = copy.deepcopy(self.policy).requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=config.lr)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.updates = 0

    def decode(self, tokens):
        """Token t ↦ floor + t/(B−1)·(ceiling − floor)."""
        c = self.config
        return c.floor + tokens.double() / (c.buckets - 1) * (c.ceiling - c.floor)

    def _answer(self, model, prompt, greedy: bool, count: int):
        """``count`` answers of one token per kind, autoregressively after the prompt."""
        torch = self.torch
        with torch.no_grad():
            logits, state = model(prompt.expand(count, -1))
            token = torch.full((count, 1), self.bos, dtype=torch.long)
            answer = []
            for _ in range(prompt.shape[1]):
                logits, state = model(token, state)
                probs = torch.softmax(logits[:, -1], -1)
                token = (probs.argmax(-1, keepdim=True) if greedy
                         else torch.multinomial(probs, 1, generator=self.generator))
                answer.append(token)
            return torch.cat(answer, 1)

    def _log_prob(self, model, prompt, answers):
        """Σ log π(answer | prompt) per answer."""
        torch = self.torch
        n = answers.shape[0]
        start = torch.full((n, 1), self.bos, dtype=torch.long)
        tokens = torch.cat([prompt.expand(n, -1), start, answers[:, :-1]], 1)
        logits, _ = model(tokens)
        logp = torch.log_softmax(logits[:, prompt.shape[1]:], -1)
        return logp.gather(-1, answers.unsqueeze(-1)).squeeze(-1).sum(-1)

    def adapt(self, ctx: WeightingContext) -> dict[str, float]:
        torch, c = self.torch, self.config
        kinds = sorted(ctx.weights)
        norms = [ctx.grad_norms.get(k, 0.0) for k in kinds]
        norms = [n if math.isfinite(n) else 0.0 for n in norms]
        ratios = [min(n / c.target, c.max_ratio) for n in norms]
        prompt = torch.tensor([[round(r / c.max_ratio * (c.buckets - 1)) for r in ratios]], dtype=torch.long)
        ideal = torch.tensor([min(c.ceiling, max(c.floor, ctx.weights[k] * c.target / n)) if n > 0 else ctx.weights[k]
                              for k, n in zip(kinds, norms)], dtype=torch.float64)

        answers = self._answer(self.reference, prompt, greedy=False, count=c.group)
        rewards = -(self.decode(answers) - ideal).abs().mean(-1)
        advantage = (rewards - rewards.mean()) / (rewards.std() + 1e-8)
        logp = self._log_prob(self.policy, prompt, answers)
        with torch.no_grad():
            logp_ref = self._log_prob(self.reference, prompt, answers)
        ratio = torch.exp((logp - logp_ref) / len(kinds))
        clipped = ratio.clamp(1 - c.epsilon, 1 + c.epsilon)
        loss = -torch.minimum(ratio * advantage, clipped * advantage).mean()
        self.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.policy.parameters(), 1.0)
        self.optimizer.step()
        self.updates += 1
        if self.updates % c.ref_sync == 0:
            self.reference.load_state_dict(self.policy.state_dict())

        greedy = self.decode(self._answer(self.policy, prompt, greedy=True, count=1))[0]
        with torch.no_grad():
            self.details = {"loss": loss.item(), "mean_reward": rewards.mean().item(), "mean_ratio": ratio.mean().item(),
                            "clipped_fraction": ((ratio - clipped).abs() > 0).double().mean().item()}
        return {k: min(c.ceiling, max(c.floor, (1 - c.apply_rate) * ctx.weights[k] + c.apply_rate * float(w)))
                for k, w in zip(kinds, greedy)}
