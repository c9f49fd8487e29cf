"""The Python API: `netdsl.load(path)` gives a `Model` to initialise, evaluate, train and render."""
from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .errors import Error, did_you_mean
from .frontend.loader import Program, load_program
from .frontend.lower import Lowerer, select_model
from .ir.architecture import Architecture
from .ir.graph import Graph
from .layers.init import initialize, param_rng


class Model:
    """One checked model of a `.net` program.

    `graph` is the inference graph (dropout off, running statistics); `training_forward` the
    graph in training mode.  Both are lowered from the same source and share parameter names.
    """

    def __init__(self, program: Program, name: str, graph: Graph, architecture: Architecture):
        self.program = program
        self.name = name
        self.graph = graph
        self.architecture = architecture

    # -- construction ---------------------------------------------------------------------
    @staticmethod
    def from_program(program: Program, name: str | None = None) -> "Model":
        _check_train_sections(program)
        model = select_model(program, name)
        graph, architecture = Lowerer(program, model, training=False).lower()
        return Model(program, model.name, graph, architecture)

    @cached_property
    def training_forward(self) -> Graph:
        """The forward graph in training mode (dropout on, batch statistics)."""
        graph, _ = Lowerer(self.program, self.program.models[self.name], training=True).lower()
        return graph

    @property
    def source(self) -> str:
        return self.program.main

    @property
    def base_dir(self) -> Path:
        return self.program.base_dir

    # -- parameters -----------------------------------------------------------------------
    @property
    def parameter_shapes(self) -> dict[str, tuple[tuple[int, ...], str]]:
        """Every parameter and state: name -> (shape, element type)."""
        return {p.name: (tuple(p.value.shape), str(p.value.dtype)) for p in self.graph.params}

    def init(self, seed: int = 0) -> dict[str, np.ndarray]:
        """Fresh weights by name (section 9 names), drawn from each parameter's initialiser."""
        weights = {}
        for info in self.graph.params:
            shape = tuple(int(d) for d in info.value.shape)
            weights[info.name] = initialize(info.init, shape, param_rng(seed, info.name),
                                            info.fan, dtype=info.value.dtype.numpy)
        return weights

    def check_weights(self, weights: Mapping[str, np.ndarray], source: str | None = None,
                      meta: Mapping[str, Any] | None = None) -> None:
        """Raise one Error naming every missing, extra or mis-shaped weight; or, when the
        checkpoint's `meta` names another model, one error saying so."""
        from .runtime.checkpoint import check_weights
        check_weights(dict(weights), self.parameter_shapes, source=source, model=self.name,
                      meta=meta)

    def load_weights(self, path: str | Path, partial: bool = False):
        """This model's weights from a checkpoint: a LoadedWeights (`.weights`, `.skipped`,
        `.meta`).  With `partial`, names the model does not have are skipped (listed in
        `.skipped`) instead of being an error; a missing or mis-shaped name is always one."""
        from .runtime.checkpoint import load_weights
        return load_weights(path, self.parameter_shapes, partial=partial, model=self.name)

    # -- evaluation -----------------------------------------------------------------------
    @cached_property
    def inference_graph(self) -> Graph:
        """Only what the `out`s need: inference does not ask for labels."""
        return self.graph.restricted()

    def forward(self, weights: Mapping[str, np.ndarray], inputs: Mapping[str, np.ndarray],
                target: str = "reference") -> dict[str, np.ndarray]:
        """Inference: every `out` of the model by name (dropout off, running statistics)."""
        graph = self.inference_graph
        self.check_weights(weights)
        arrays = self._arrays(graph, weights, inputs)
        from .runtime.threads import limited_blas_threads
        with limited_blas_threads():
            outputs = self.compiled_forward(target).run(arrays)
        return {name: outputs[name] for name in graph.outputs}

    def _arrays(self, graph: Graph, weights: Mapping[str, np.ndarray],
                inputs: Mapping[str, np.ndarray], step: int = 0) -> dict[str, np.ndarray]:
        """Inputs cast to their declared types and checked by name, plus weights (copied).

        The inputs get the checks `train` makes of its data (runtime/data.py): no value of an
        integer input that is not a whole number (a cast would truncate it), ids and labels
        within their range, and no NaN or inf unless the train section allows them."""
        from .backends.reference import bind_dims
        from .runtime.data import DTYPES, cast_array
        from .runtime.input_checks import check_finite, check_index_ranges
        arrays: dict[str, Any] = {}
        for value in graph.inputs:
            if value.name == "__rng__":
                arrays[value.name] = np.asarray(step, dtype=np.int64)
                continue
            if value.name.startswith("__"):
                continue
            if value.name not in inputs:
                hint = did_you_mean(value.name, inputs) or \
                    f"inputs given: {', '.join(inputs) or 'none'}"
                raise Error(f"no data for input '{value.name}' ({value.type})",
                            graph.input_spans.get(value.name), hint)
            span = graph.input_spans.get(value.name)
            array = np.asarray(inputs[value.name])
            if str(value.dtype) in DTYPES:
                array = cast_array(array, str(value.dtype), value.name, span)
                if not self._allow_nonfinite:
                    check_finite(value.name, array, span)
            # np.require, not np.ascontiguousarray: that makes a rank-0 input shape [1].
            arrays[value.name] = np.require(array, dtype=value.dtype.numpy, requirements="C")
        bind_dims(graph, arrays)
        check_index_ranges(arrays, self._index_ranges(graph), graph.input_spans)
        for info in graph.params:
            if info.name in weights:
                arrays[info.name] = np.array(weights[info.name], dtype=info.value.dtype.numpy)
        return arrays

    def _index_ranges(self, graph: Graph) -> list:
        """The inputs of `graph` used as ids or labels, with their ranges (cached per graph)."""
        from .runtime.input_checks import index_ranges
        cache = self.__dict__.setdefault("_ranges", {})
        if id(graph) not in cache:
            cache[id(graph)] = (graph, index_ranges(graph))
        return cache[id(graph)][1]

    @property
    def _allow_nonfinite(self) -> bool:
        """The train section's allow_nonfinite (False when the section cannot be read)."""
        try:
            return bool(self.train_config.allow_nonfinite)
        except Error:
            return False

    def compiled_forward(self, target: str = "cpu"):
        """The inference graph compiled for `target` (cached per model and target)."""
        cache = self.__dict__.setdefault("_compiled", {})
        if target not in cache:
            from .compiler import compile_step
            cache[target] = compile_step(self.inference_graph, target=target)
        return cache[target]

    # -- sampling -----------------------------------------------------------------------
    def latents(self, n: int = 64, seed: int = 0,
                inputs: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """The inputs `sample` draws: every float input not in `inputs`, from N(0, 1), with
        the batch dim (the first) = n; the same seed gives the same arrays."""
        from .runtime.sampling import draw_latents
        return draw_latents(self.inference_graph, n, seed, inputs or {})

    def sample(self, weights: Mapping[str, np.ndarray], n: int = 64, seed: int = 0,
               target: str = "cpu", inputs: Mapping[str, np.ndarray] | None = None
               ) -> dict[str, np.ndarray]:
        """Every `out` of the model for n samples: the inputs not given are latents drawn as
        `latents(n, seed, inputs)` does (a decoder's `z`); an integer input must be given."""
        given = dict(inputs or {})
        return self.forward(weights, {**given, **self.latents(n, seed, given)}, target=target)

    def generate(self, weights: Mapping[str, np.ndarray], prompt, length: int = 200,
                 **options: Any) -> np.ndarray:
        """A causal language model's continuation of `prompt` ([n, P] token ids), one token
        at a time: [n, P + length] ids.  Options: temperature, top_k, seed, context, target
        (runtime/generate.py)."""
        from .runtime.generate import generate
        return generate(self, weights, prompt, length, **options)

    # -- training -------------------------------------------------------------------------
    @cached_property
    def train_config(self):
        """The model's train section (defaults where it has none)."""
        from .frontend.train_section import read_train
        return read_train(self.program.trains.get(self.name), self.program.consts)

    @cached_property
    def memory_pool(self):
        """Where its fits' storage and batch buffers come from (runtime/memory_pool.py): the
        memory of a fit whose result is gone goes to the next fit, without page faults.  It
        holds at most one fit's worth while the model lives; `clear()` gives it back."""
        from .runtime.memory_pool import MemoryPool
        return MemoryPool()

    def compiled_training_step(self, target: str, training, trace=None) -> tuple[Any, Graph, bool]:
        """The training step `training` (compiler.Training) builds from `training_forward`,
        compiled for `target`: (compiled step, the training stage's graph, whether it was
        reused).  Cached per model, target and Training (a frozen dataclass of the optimiser
        and its settings), as `compiled_forward` is: a second `fit` of the same model in a
        process compiles nothing (the compiler's cache-hit path re-runs the passes and the
        code generation to find its key: 40-60 ms for the MLP and LeNet, a third of their
        short fits).  `trace` sees the stages of a compile only, not of a reuse."""
        cache = self.__dict__.setdefault("_training_steps", {})
        key = (target, training)
        if key in cache:
            return (*cache[key], True)
        from .compiler import TRAINING_STAGE, StageRecorder, compile_step
        recorder = StageRecorder(TRAINING_STAGE, then=trace)
        compiled = compile_step(self.training_forward, target, training, trace=recorder)
        cache[key] = (compiled, recorder[TRAINING_STAGE])
        return (*cache[key], False)

    def has_compiled_evaluation(self, target: str = "cpu") -> bool:
        """Whether `compiled_evaluation(target)` has been compiled in this process."""
        return target in self.__dict__.get("_evaluation", {})

    def compiled_evaluation(self, target: str = "cpu") -> tuple[Any, bool]:
        """The inference graph with its losses kept (validation and test scores), compiled
        for `target`, and whether it was reused (cached per model and target)."""
        cache = self.__dict__.setdefault("_evaluation", {})
        if target in cache:
            return cache[target], True
        from .compiler import compile_step
        cache[target] = compile_step(self.graph.restricted(keep_losses=True), target=target)
        return cache[target], False

    def loss_and_grad(self, weights: Mapping[str, np.ndarray],
                      inputs: Mapping[str, np.ndarray], target: str = "reference",
                      step: int = 0, loss: str | None = None) -> tuple[float, dict[str, np.ndarray]]:
        """The loss (sum of the model's losses) and its gradient for every trainable weight.

        A model with several objectives (losses declared `wrt`) names one with `loss=`: its
        value and the gradients of the parameters it trains."""
        cache = self.__dict__.setdefault("_loss_and_grad", {})
        if (target, loss) not in cache:
            from .compiler import GRADIENTS, Training, compile_step
            cache[target, loss] = compile_step(self.training_forward, target=target,
                                               training=GRADIENTS if loss is None
                                               else Training(loss_name=loss))
        compiled = cache[target, loss]
        self.check_weights(weights)
        arrays = self._arrays(compiled.graph, weights, inputs, step)
        from .runtime.threads import limited_blas_threads
        with limited_blas_threads():
            results = compiled.run(arrays)
        grads = {name[len("grad."):]: value for name, value in results.items()
                 if name.startswith("grad.")}
        return float(results["loss"]), grads

    def fit(self, weights: Mapping[str, np.ndarray], data: Any = None, *,
            target: str = "cpu", verbose: bool = False, resume: Any = None, **options: Any):
        """Train from `weights` (not mutated); keyword options override the train section.

        `resume` (a checkpoint path, or a FitResult's `.resume`) continues that run exactly
        instead: its weights, optimisers, epoch and step (runtime/resume.py).
        Returns a FitResult with `.weights`, `.history` (one dict per epoch) and `.test` (the
        test set's loss and metrics after training, with `test=0.1` or test data; else None)."""
        from .runtime.train_config import with_overrides
        from .runtime.train import fit
        config = with_overrides(self.train_config, options, origin="fit()")
        return fit(self, dict(weights), config, data=data, target=target, verbose=verbose,
                   resume=resume)

    # -- views ----------------------------------------------------------------------------
    def summary(self, **options: Any) -> str:
        """The `netdsl check` table: options batch, dims ({"T": 12}), expand, ascii_only,
        memory (False: the table and totals without planning a step); summary.py."""
        from .summary import summarize
        return summarize(self, **options)

    def render(self, level: str = "layers", **options: Any):
        """A graphviz.Digraph of the model (shows inline in Jupyter)."""
        from .render import render_model
        return render_model(self, level=level, **options)

    def __repr__(self) -> str:
        return f"<netdsl.Model {self.name} from {self.source}>"


def _check_train_sections(program: Program) -> None:
    """Every train section names a model of the program."""
    from .errors import Diagnostics
    diagnostics = Diagnostics()
    for name, train in program.trains.items():
        if name not in program.models:
            diagnostics.add(f"train section for '{name}', which is not a model of "
                            f"{program.main}", getattr(train, "name_span", None) or train.span,
                            did_you_mean(name, program.models) or
                            (f"models: {', '.join(program.models)}" if program.models else
                             "a train section trains the model of the same name"))
    diagnostics.raise_if_any()


def load(path: str | Path, model: str | None = None) -> Model:
    """Parse and check a `.net` file; raises netdsl.Error with the CLI's message."""
    return Model.from_program(load_program(path), model)


def load_all(path: str | Path) -> list[Model]:
    """Every model of a file, each checked; errors of all models are reported together."""
    from .errors import Diagnostics
    program = load_program(path)
    models, diagnostics = [], Diagnostics()
    for name in program.models:
        try:
            models.append(Model.from_program(program, name))
        except Error as error:
            diagnostics.extend(error)
    diagnostics.raise_if_any()
    if not models:
        select_model(program)           # raises "defines no model"
    return models
