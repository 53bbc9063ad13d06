"""The training loop: InfoNCE + lambda * MLM, per-group AdamW, resumable run folders, validation each epoch.

Run folder layout (everything needed to resume or to ship):

    run_dir/train_config.json      frozen TrainConfig (model config included)
    run_dir/state.pt               last training state (weights, optimiser, scheduler, RNG, position), tensors only
    run_dir/history.jsonl          one line per finished epoch: losses, throughput, validation metrics
    run_dir/model/                 the best-on-validation model in the shipped format (Encoder.load reads it),
                                   with vocabulary.json: every word of the captions training paired with motion

Data: any map-style dataset whose items are mappings `{"x": (frames, C) float32 normalised, "valid_len": int,
"caption": str, "take_id": str}` plus an optional "group" (see docs/architecture.md, "train data"), optional
"part_spans" (`[(start, end, parts)]`: caption characters and the body parts they talk about, for the token->part
loss) and an optional "source" (counted in the vocabulary file); an optional
`set_epoch(epoch)` is called at the start of every epoch. Model selection uses the validation split only, never a test split.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from mofind.model.config import ModelConfig
from mofind.model.registry import build_model, get_config

from .objectives import mask_tokens, positive_matrix, symmetric_info_nce, token_part_loss, token_part_targets

STATE_FILE = "state.pt"
CONFIG_FILE = "train_config.json"
HISTORY_FILE = "history.jsonl"
MODEL_DIR = "model"


@dataclass
class TrainConfig:
    """Hyper-parameters of one run (JSON round trip; stored in the run folder).

    Args:
        model: a registered config name or a full `ModelConfig` dict.
        lr / lr_motion / lr_text: learning rates of the projections + MLM head / the motion encoder / the trainable
            text layers.
        mlm_weight: lambda of the MLM loss (0 disables it); mlm_probability: masking rate;
            mlm_batch_share: fraction of each batch's captions that also get an MLM pass.
        mlm_texts: a text file ("shared:REL" = REL under shared/; one caption a line, e.g. shared/data/humanml3d-texts/train_captions.txt) whose
            lines replace the batch captions in the MLM pass: a text-side regulariser over wording that has
            no motion (None = MLM on the batch captions).
        init_from: a shipped model folder whose weights start the run (its architecture must equal `model`'s);
            `mofind train --data all` then also keeps its angle statistics. None = fresh initialisation.
        threads: torch CPU threads (0 = torch's default). On a shared, loaded machine one thread is faster
            than two that keep waiting for each other.
        corpus: items per epoch of each source of `--data all` (`mofind.train.corpus.CorpusShares` fields).
        part_weight: weight of the token->body-part loss (`objectives.token_part_loss`) on tokens of phrases
            whose body parts are known (0 disables it).
        part_margin: None = that loss as a cross-entropy over parts; a number = a hinge with this cosine margin.
        distill_from: a shipped model folder kept frozen as a teacher ("learning without forgetting", Li & Hoiem
            2016): on the items of `distill_sources` the batch's text->motion and motion->text distributions are
            pulled toward the teacher's (KL, weight `distill_weight`), so adding the part loss and new corpora
            does not forget what the teacher retrieves well. None = no teacher.
        train_logit_scale: also learn the temperature (the official model keeps it at ln(1/0.07)).
        logit_scale: set the model's logit_scale (ln of the InfoNCE temperature multiplier) to this after
            `init_from`; None = the model's own. MaxSim scores of two styles of one action differ by ~0.01-0.08, which
            at exp(2.66) = 14.3 are logit gaps the softmax barely sees; search and calibration never use it.
        precision: "fp32" or "bf16" (autocast on CPU or CUDA).
        save_every_steps: also save the resumable state every n steps inside an epoch (0 = only per epoch).
        max_steps_per_epoch: cut epochs short (smoke tests, quick experiments).
        keep_epoch_models: also write every epoch's weights to run_dir/epochs/N (so a model can be chosen on
            more than the selection score, e.g. explanation localisation, without retraining).
        grouped_batches: 0 = plain random batches; n > 1 = every run of n batches is re-dealt so that labelled
            items of one content (e.g. every style of "wave the left hand") share a batch: in-batch negatives
            then differ in style, the case a random batch of 64 rarely contains (`mix.content_keys`).
    """

    model: str | dict = "compact"
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-4
    lr_motion: float = 1e-4
    lr_text: float = 2e-5
    weight_decay: float = 0.01
    warmup_steps: int = 200
    grad_clip: float = 1.0
    mlm_weight: float = 0.2
    mlm_probability: float = 0.15
    mlm_batch_share: float = 0.5
    mlm_texts: str | None = None
    part_weight: float = 0.0
    part_margin: float | None = None
    distill_from: str | None = None
    distill_weight: float = 1.0
    distill_sources: tuple[str, ...] = ("bandai templates",)
    corpus: dict = field(default_factory=dict)
    init_from: str | None = None
    threads: int = 0
    train_logit_scale: bool = False
    logit_scale: float | None = None
    precision: str = "fp32"
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    save_every_steps: int = 0
    max_steps_per_epoch: int | None = None
    val_batch_size: int = 64
    keep_epoch_models: bool = False
    grouped_batches: int = 0

    def model_config(self) -> ModelConfig:
        return get_config(self.model) if isinstance(self.model, str) else ModelConfig.from_dict(self.model)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s): {', '.join(unknown)}")
        config = cls(**data)
        if config.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {config.precision!r}")
        return config

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: line {exc.lineno}: invalid JSON ({exc.msg})") from exc


@dataclass
class TrainResult:
    run_dir: Path
    epochs_done: int
    best_epoch: int | None
    best_score: float | None
    history: list[dict] = field(default_factory=list)


def resolve_device(name: str) -> torch.device:
    from mofind.model.device import resolve_device as resolve_name

    return torch.device(resolve_name(name))


def parameter_groups(model, config: TrainConfig) -> list[dict]:
    """AdamW groups: motion encoder / trainable text layers / projections + MLM head (+ logit_scale);
    no weight decay on biases, norms and 1-D tensors."""
    text_backbone = {id(p) for p in model.text_encoder.text_model.base_model.parameters()}
    motion = {id(p) for p in model.motion_encoder.parameters()}
    groups: dict[tuple[str, bool], list] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad or name == "logit_scale":
            continue
        kind = "motion" if id(param) in motion else "text" if id(param) in text_backbone else "head"
        decay = param.ndim >= 2
        groups.setdefault((kind, decay), []).append(param)
    rates = {"motion": config.lr_motion, "text": config.lr_text, "head": config.lr}
    out = [{"params": params, "lr": rates[kind], "weight_decay": config.weight_decay if decay else 0.0,
            "name": f"{kind}{'' if decay else '_no_decay'}"} for (kind, decay), params in sorted(groups.items())]
    if config.train_logit_scale:
        out.append({"params": [model.logit_scale], "lr": config.lr, "weight_decay": 0.0, "name": "logit_scale"})
    else:
        model.logit_scale.requires_grad_(False)
    return out


def warmup_cosine(warmup: int, total: int):
    def factor(step: int) -> float:
        if warmup > 0 and step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return factor


class Trainer:
    """One training run in `run_dir`; `fit()` resumes from `state.pt` when it exists."""

    def __init__(self, config: TrainConfig, train_data, val_data, stats, run_dir: str | Path, *,
                 progress: bool = True, model=None, allow_download: bool = False, mlm_exclude=()):
        self.config = config
        self.train_data, self.val_data, self.stats = train_data, val_data, stats
        self.run_dir = Path(run_dir)
        self.progress = progress
        self.device = resolve_device(config.device)
        self.model_config = config.model_config()
        if config.threads:
            torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)
        self.model = (model or build_model(self.model_config, allow_download=allow_download)).to(self.device)
        if config.init_from and model is None:
            self._initialise_from(Path(config.init_from))
        if config.logit_scale is not None:
            with torch.no_grad():
                self.model.logit_scale.fill_(float(config.logit_scale))
        self.teacher = None
        if config.distill_from:
            from mofind.model.checkpoint import load_shipped

            self.teacher = load_shipped(Path(config.distill_from)).model.to(self.device).eval()
            for parameter in self.teacher.parameters():
                parameter.requires_grad_(False)
        self.tokenizer = _tokenizer_for(self.model_config)
        self.optimizer = torch.optim.AdamW(parameter_groups(self.model, config))
        self.steps_per_epoch = self._steps_per_epoch()
        total = self.steps_per_epoch * config.epochs
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, warmup_cosine(config.warmup_steps, total))
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.best_score: float | None = None
        self.best_epoch: int | None = None
        self.history: list[dict] = []
        self.special_ids = sorted(set(self.tokenizer.all_special_ids))
        # held-out captions (e.g. of validation takes) never enter the MLM pass either
        exclude = {" ".join(text.lower().split()) for text in mlm_exclude}
        self.mlm_pool = None
        if config.mlm_texts:
            self.mlm_pool = [line for line in _read_lines(config.mlm_texts)
                             if " ".join(line.lower().split()) not in exclude]
        self.part_names = [name for name, _ in self.model_config.motion.parts]
        self.vocabulary_texts: dict[str, list[str]] = {}  # source -> captions seen (for vocabulary.json)
        self.vocab_size = int(self.model.text_encoder.text_model.get_input_embeddings().num_embeddings)

    def _initialise_from(self, directory: Path) -> None:
        """Start from a shipped model's weights (strict: same architecture)."""
        from mofind.model.checkpoint import load_shipped

        bundle = load_shipped(directory)
        ours, theirs = self.model_config.to_dict(), bundle.config.to_dict()
        for key in ("motion", "text", "projection_dim", "patch_mask", "scoring"):
            if ours[key] != theirs[key]:
                raise ValueError(f"init_from {directory}: its {key} differs from the run's model config")
        self.model.load_state_dict(bundle.model.state_dict(), strict=True)
        self.init_hash = bundle.model_hash

    # -- state -------------------------------------------------------------------------------------------
    def save_state(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._update_vocabulary()
        state = {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "torch_rng": torch.get_rng_state(),
            "epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "global_step": self.global_step,
            "best_score": -1.0 if self.best_score is None else self.best_score,
            "best_epoch": -1 if self.best_epoch is None else self.best_epoch,
        }
        tmp = self.run_dir / (STATE_FILE + ".tmp")
        torch.save(state, tmp)
        tmp.replace(self.run_dir / STATE_FILE)  # atomic: an interrupted save never corrupts the last state

    def load_state(self) -> bool:
        path = self.run_dir / STATE_FILE
        if not path.is_file():
            return False
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"].cpu())
        self.epoch, self.step_in_epoch = int(state["epoch"]), int(state["step_in_epoch"])
        self.global_step = int(state["global_step"])
        self.best_score = None if state["best_epoch"] < 0 else float(state["best_score"])
        self.best_epoch = None if state["best_epoch"] < 0 else int(state["best_epoch"])
        history = self.run_dir / HISTORY_FILE
        if history.is_file():
            records = [json.loads(line) for line in history.read_text().splitlines() if line.strip()]
            # a run killed after writing an epoch's line but before saving its state redoes that epoch
            self.history = [record for record in records if record["epoch"] <= self.epoch]
            if len(self.history) < len(records):
                history.write_text("".join(json.dumps(record) + "\n" for record in self.history))
        return True

    # -- batches -----------------------------------------------------------------------------------------
    def _steps_per_epoch(self) -> int:
        steps = len(self.train_data) // self.config.batch_size  # drop_last: InfoNCE wants full batches
        if steps == 0:
            raise ValueError(f"training set has {len(self.train_data)} items, fewer than one batch "
                             f"({self.config.batch_size})")
        if self.config.max_steps_per_epoch:
            steps = min(steps, self.config.max_steps_per_epoch)
        return steps

    def epoch_order(self, epoch: int) -> list[int]:
        generator = torch.Generator().manual_seed(self.config.seed * 100_003 + epoch)
        order = torch.randperm(len(self.train_data), generator=generator).tolist()
        if self.config.grouped_batches > 1:
            from .mix import content_keys, grouped_order

            order = grouped_order(order, content_keys(self.train_data, epoch), self.config.batch_size,
                                  self.config.grouped_batches, generator)
        return order

    def collate(self, items: list[dict]) -> dict:
        frames = self.model_config.motion.frames
        for item in items:
            if item["x"].shape != (frames, self.model_config.motion.input_dim):
                raise ValueError(f"item {item['take_id']}: x has shape {item['x'].shape}, the model expects "
                                 f"({frames}, {self.model_config.motion.input_dim})")
        captions = [item["caption"] for item in items]
        spans = [item.get("part_spans") for item in items]
        want_offsets = self.config.part_weight > 0 and any(spans) and self.tokenizer.is_fast
        tokens = self.tokenizer(captions, padding=True, truncation=True, return_offsets_mapping=want_offsets,
                                max_length=self.model_config.text.max_length, return_tensors="pt")
        for item in items:
            self.vocabulary_texts.setdefault(str(item.get("source", "training captions")), []).append(item["caption"])
        part_targets = None
        if want_offsets:  # positions 1..L-2, as encode_text keeps them
            part_targets = token_part_targets(tokens["offset_mapping"], spans, self.part_names)[:, 1:-1]
        return {
            "x": torch.from_numpy(np.stack([item["x"] for item in items])),
            "valid_len": torch.tensor([int(item["valid_len"]) for item in items]),
            "input_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"],
            "captions": captions, "take_ids": [str(item["take_id"]) for item in items],
            "groups": [item.get("group") for item in items], "part_targets": part_targets,
            "sources": [str(item.get("source", "")) for item in items],
        }

    def batches(self, epoch: int, skip: int):
        from torch.utils.data import DataLoader

        order = self.epoch_order(epoch)[: self.steps_per_epoch * self.config.batch_size]
        order = order[skip * self.config.batch_size:]
        batch_sampler = [order[i:i + self.config.batch_size] for i in range(0, len(order), self.config.batch_size)]
        # its own generator: creating the iterator must not advance the global RNG that dropout uses,
        # or a resumed run would diverge from an uninterrupted one
        generator = torch.Generator().manual_seed(self.config.seed + epoch)
        return DataLoader(self.train_data, batch_sampler=batch_sampler, collate_fn=self.collate,
                          num_workers=self.config.num_workers, generator=generator)

    # -- one step ----------------------------------------------------------------------------------------
    def losses(self, batch: dict, generator: torch.Generator) -> dict[str, torch.Tensor]:
        device = self.device
        x, valid_len = batch["x"].to(device), batch["valid_len"].to(device)
        ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.config.precision == "bf16"):
            model = self.model
            patches, patch_valid = model.encode_motion(x, valid_len)
            tokens, token_valid = model.encode_text(ids, mask)
            scale = model.temperature_scale()
            logits = model.similarity(tokens, token_valid, patches, patch_valid) * scale
            positives = positive_matrix(batch["captions"], batch["take_ids"], batch.get("groups"), device)
            contrastive = symmetric_info_nce(logits.float(), positives)
            out = {"contrastive": contrastive, "loss": contrastive}
            targets = batch.get("part_targets")
            if self.config.part_weight > 0 and targets is not None:
                part = token_part_loss(tokens, token_valid, patches, patch_valid, targets.to(device),
                                       self.model_config.motion.grid, scale,
                                       margin=self.config.part_margin)
                if part is not None:
                    out["part"] = part.float()
                    out["loss"] = out["loss"] + self.config.part_weight * out["part"]
            if self.teacher is not None:
                distill = self._distill_loss(batch, x, valid_len, ids, mask, logits)
                if distill is not None:
                    out["distill"] = distill
                    out["loss"] = out["loss"] + self.config.distill_weight * distill
            if self.config.mlm_weight > 0:
                rows = max(1, round(self.config.mlm_batch_share * len(ids)))
                mlm_ids, mlm_mask = ids[:rows].cpu(), mask[:rows].cpu()
                if self.mlm_pool:
                    picks = torch.randint(len(self.mlm_pool), (rows,), generator=generator).tolist()
                    text = self.tokenizer([self.mlm_pool[i] for i in picks], padding=True, truncation=True,
                                          max_length=self.model_config.text.max_length, return_tensors="pt")
                    mlm_ids, mlm_mask = text["input_ids"], text["attention_mask"]
                corrupted, labels = mask_tokens(
                    mlm_ids, mlm_mask, special_ids=self.special_ids,
                    mask_id=self.tokenizer.mask_token_id, vocab_size=self.vocab_size,
                    probability=self.config.mlm_probability, generator=generator)
                mlm = self.model.text_encoder.mlm_loss(corrupted.to(device), mlm_mask.to(device), labels.to(device))
                out["mlm"] = mlm.float()
                out["loss"] = out["loss"] + self.config.mlm_weight * out["mlm"]
        return out

    def _distill_loss(self, batch, x, valid_len, ids, mask, logits) -> torch.Tensor | None:
        """KL(teacher || student) of the in-batch softmax, both directions, over the items the teacher knows."""
        keep = torch.tensor([source in self.config.distill_sources for source in batch.get("sources", [])],
                            dtype=torch.bool, device=logits.device)
        if int(keep.sum()) < 2:
            return None
        with torch.no_grad():
            teacher = self.teacher
            t_patches, t_valid = teacher.encode_motion(x[keep], valid_len[keep])
            t_tokens, t_token_valid = teacher.encode_text(ids[keep], mask[keep])
            target = (teacher.similarity(t_tokens, t_token_valid, t_patches, t_valid) * teacher.temperature_scale()).float()
        student = logits[keep][:, keep].float()
        loss = 0.0
        for s_rows, t_rows in ((student, target), (student.T, target.T)):
            loss = loss + torch.nn.functional.kl_div(torch.log_softmax(s_rows, -1), torch.log_softmax(t_rows, -1),
                                                     log_target=True, reduction="batchmean")
        return loss / 2

    def train_step(self, batch: dict) -> dict[str, float]:
        self.model.train()
        generator = torch.Generator().manual_seed(self.config.seed * 1_000_003 + self.global_step)
        losses = self.losses(batch, generator)
        self.optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        if self.config.grad_clip:
            params = [p for group in self.optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.global_step += 1
        return {name: float(value.detach()) for name, value in losses.items()}

    # -- validation --------------------------------------------------------------------------------------
    def validate(self) -> dict:
        """Metrics on the validation split (All protocol + batch-32 when it has 32 items)."""
        from mofind.eval.protocols import embed_dataset, evaluate_embedded
        from mofind.model.inference import Encoder

        if self.val_data is None or len(self.val_data) == 0:
            return {}
        encoder = Encoder.from_model(self.model, self.tokenizer, self.stats, self.model_config,
                                     device=self.device, batch_size=self.config.val_batch_size)
        embedded = embed_dataset(encoder, self.val_data, batch_size=self.config.val_batch_size)
        result = evaluate_embedded(embedded, use_patch_mask=encoder.uses_patch_mask,
                                   scoring=self.model_config.scoring)
        self.model.train()
        return result

    @staticmethod
    def selection_score(metrics: dict) -> float:
        """Mean of text->motion and motion->text R@5 on the whole validation gallery (the paper's criterion)."""
        all_metrics = metrics["all"]
        return (all_metrics["t2m_r5"] + all_metrics["m2t_r5"]) / 2

    # -- the loop ----------------------------------------------------------------------------------------
    def fit(self, resume: bool = True) -> TrainResult:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / CONFIG_FILE).write_text(self.config.to_json() + "\n", encoding="utf-8")
        if resume:
            self.load_state()
        while self.epoch < self.config.epochs:
            self._run_epoch()
        return TrainResult(self.run_dir, self.epoch, self.best_epoch, self.best_score, self.history)

    def _run_epoch(self) -> None:
        from tqdm import tqdm

        epoch = self.epoch
        if hasattr(self.train_data, "set_epoch"):
            self.train_data.set_epoch(epoch)
        sums: dict[str, float] = {}
        seen, done, started = 0, 0, time.perf_counter()
        bar = tqdm(total=self.steps_per_epoch, initial=self.step_in_epoch, desc=f"epoch {epoch + 1}",
                   disable=not self.progress, unit="step")
        for batch in self.batches(epoch, skip=self.step_in_epoch):
            values = self.train_step(batch)
            self.step_in_epoch += 1
            done += 1
            seen += len(batch["captions"])
            for name, value in values.items():
                sums[name] = sums.get(name, 0.0) + value
            rate = seen / max(time.perf_counter() - started, 1e-9)
            bar.set_postfix(loss=f"{values['loss']:.3f}", samples_s=f"{rate:.1f}")
            bar.update(1)
            if self.config.save_every_steps and self.step_in_epoch % self.config.save_every_steps == 0:
                self.save_state()
        bar.close()
        record = {"epoch": epoch + 1, "global_step": self.global_step,
                  **{f"train_{k}": v / max(done, 1) for k, v in sums.items()},
                  "samples_per_s": seen / max(time.perf_counter() - started, 1e-9)}
        metrics = self.validate()
        if metrics:
            record["val"] = metrics
            score = self.selection_score(metrics)
            if self.best_score is None or score > self.best_score:
                self.best_score, self.best_epoch = score, epoch + 1
                self._save_model()
        else:
            self._save_model()  # no validation split: ship the latest weights
        if self.config.keep_epoch_models:
            self._save_model(self.run_dir / "epochs" / str(epoch + 1))
        self.history.append(record)
        with open(self.run_dir / HISTORY_FILE, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        self.epoch, self.step_in_epoch = epoch + 1, 0
        self.save_state()

    def _save_model(self, directory: Path | None = None) -> None:
        import shutil

        from mofind.model.checkpoint import save_shipped
        from mofind.model.vocabulary import VOCABULARY_FILE

        directory = save_shipped(self.model, self.stats, directory or self.run_dir / MODEL_DIR)
        self._update_vocabulary()
        if (self.run_dir / VOCABULARY_FILE).is_file():
            shutil.copyfile(self.run_dir / VOCABULARY_FILE, directory / VOCABULARY_FILE)

    def _update_vocabulary(self) -> None:
        """Merge the words of the captions trained on since the last call into run_dir/vocabulary.json."""
        from mofind.model.vocabulary import VOCABULARY_FILE, build_vocabulary, merge_vocabularies, read_vocabulary

        if not self.vocabulary_texts:
            return
        path = self.run_dir / VOCABULARY_FILE
        seen = build_vocabulary(self.vocabulary_texts)
        previous = read_vocabulary(path) if path.is_file() else None
        vocabulary = merge_vocabularies(previous, seen) if previous else seen
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(vocabulary, indent=1) + "\n", encoding="utf-8")
        tmp.replace(path)
        self.vocabulary_texts = {}


def _read_lines(path: str | Path) -> list[str]:
    """Non-empty stripped lines of a UTF-8 text file (the MLM text pool); "shared:REL" is REL under shared/."""
    from mofind import paths

    if str(path).startswith("shared:"):
        shared = paths.shared_dir()
        if shared is None:
            raise FileNotFoundError(f"mlm_texts: {path} names shared/, which is absent")
        path = shared / str(path)[len("shared:"):]
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"mlm_texts: {path} not found")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        raise ValueError(f"mlm_texts: {path} has no text")
    return lines


def _tokenizer_for(config: ModelConfig):
    from mofind.model.text_encoder import load_tokenizer

    return load_tokenizer(config.text.tokenizer)
