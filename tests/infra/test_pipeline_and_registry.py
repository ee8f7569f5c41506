from types import SimpleNamespace

import pytest

from edgec.errors import PipelineError
from edgec.infra import registry as registry_mod
from edgec.infra.pass_base import Pass, PassResult, register_pass
from edgec.infra.pipeline import parse_pipeline
from edgec.infra.registry import PassRegistry, builtin_registry, default_registry

CLEANUP = {"infer-shapes", "fold-constants", "eliminate-dead-code", "eliminate-common-subexpressions",
           "remove-identity-ops", "fix-input-shapes"}


@register_pass
class PluginNoop(Pass):
    """A test plugin pass that does nothing."""

    name = "plugin-noop"
    options = {"level": 1}

    def run(self, model, ctx):
        return PassResult(model, False)


def test_builtin_passes_registered_with_summaries():
    reg = builtin_registry()
    assert CLEANUP <= set(reg.names())
    for name in CLEANUP:
        cls = reg.get(name)
        assert cls.summary() and "\n" not in cls.summary()
        assert cls.__module__.rsplit(".", 1)[-1] == name.replace("-", "_")


@pytest.mark.parametrize("text", [
    "fold-constants,remove-identity-ops",
    "fold-constants{max_bytes=1024},eliminate-dead-code",
    "fix-input-shapes{shapes=x=1x3x224x224;mask=1x128},infer-shapes",
])
def test_parse_print_round_trip(text):
    p = parse_pipeline(text)
    assert p.text() == text
    assert parse_pipeline(p.text()).text() == text


def test_whitespace_is_normalized_and_options_coerced():
    p = parse_pipeline(" fold-constants { max_bytes = 64 } , infer-shapes{strict=true}")
    assert p.text() == "fold-constants{max_bytes=64},infer-shapes{strict=true}"
    assert p.passes[0].opts["max_bytes"] == 64 and p.passes[1].opts["strict"] is True


def test_unknown_pass_name():
    with pytest.raises(PipelineError, match="unknown pass 'fold-constantz'"):
        parse_pipeline("fold-constantz")


@pytest.mark.parametrize("text,message", [
    ("fold-constants{nope=1}", "has no option"),
    ("fold-constants{max_bytes=lots}", "expected a int"),
    ("infer-shapes{strict=maybe}", "expected a boolean"),
    ("fold-constants{max_bytes}", "must be key=value"),
    ("fold-constants;infer-shapes", "expected ','"),
])
def test_bad_options_and_syntax(text, message):
    with pytest.raises(PipelineError, match=message):
        parse_pipeline(text)


def test_duplicate_registry_name():
    reg = builtin_registry()

    @register_pass
    class Impostor(Pass):
        """Claims an existing name."""

        name = "fold-constants"

    with pytest.raises(PipelineError, match="duplicate pass name 'fold-constants'"):
        reg.add(Impostor, origin="test")


def test_register_pass_validates_name_and_doc():
    with pytest.raises(TypeError, match="kebab-case"):
        register_pass(type("Bad", (Pass,), {"name": "Bad_Name", "__doc__": "x"}))
    with pytest.raises(TypeError, match="docstring"):
        register_pass(type("NoDoc", (Pass,), {"name": "no-doc", "__doc__": None}))


def test_plugin_added_directly_is_usable_in_pipelines():
    reg = PassRegistry()
    reg.add(PluginNoop, origin="tests")
    assert "plugin-noop" in reg
    assert parse_pipeline("plugin-noop{level=3}", reg).passes[0].opts["level"] == 3
    with pytest.raises(TypeError, match="not decorated"):
        reg.add(type("Plain", (Pass,), {"name": "plain", "__doc__": "x"}))


def test_plugin_from_entry_point(monkeypatch):
    ep = SimpleNamespace(name="noop", value="tests:PluginNoop", load=lambda: PluginNoop)
    monkeypatch.setattr(registry_mod, "entry_points",
                        lambda group: [ep] if group == registry_mod.ENTRY_POINT_GROUP else [])
    reg = builtin_registry()
    reg.add_entry_points()
    assert reg.get("plugin-noop") is PluginNoop
    assert CLEANUP <= set(reg.names())

    bad = SimpleNamespace(name="bad", value="x:y", load=lambda: object())
    monkeypatch.setattr(registry_mod, "entry_points", lambda group: [bad])
    with pytest.raises(PipelineError, match="entry point 'bad'"):
        PassRegistry().add_entry_points()


def test_default_registry_contains_builtins():
    assert CLEANUP <= set(default_registry().names())


def test_options_resolved_once_by_the_manager_pipeline_text_over_context_over_defaults():
    import onnx_ir as ir

    from edgec.infra.context import PassContext
    from edgec.infra.manager import PassManager

    seen = []

    @register_pass
    class Probe(Pass):
        """Records the options it runs with."""

        name = "probe-options"
        options = {"a": 1, "b": 2, "c": 3}

        def run(self, model, ctx):
            seen.append(dict(self.opts))
            return PassResult(model, False)

    model = ir.Model(ir.Graph([], [], nodes=[], opset_imports={"": 18}), ir_version=8)
    ctx = PassContext(options={"probe-options": {"b": "20", "c": 30}})
    PassManager([Probe(c="300")]).run(model, ctx)
    assert seen == [{"a": 1, "b": 20, "c": 300}]
    with pytest.raises(PipelineError, match=r"^pass 'probe-options' has no option\(s\) \['zz'\]"):
        PassManager([Probe()]).run(model, PassContext(options={"probe-options": {"zz": 1}}))
    assert len(seen) == 1  # refused before anything ran
    Probe()(model, PassContext(options={"probe-options": {"a": 5}}))  # a direct call resolves the same way
    assert seen[-1] == {"a": 5, "b": 2, "c": 3}
