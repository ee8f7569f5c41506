"""Export the small TensorFlow/Keras models under tests/models/ with tf2onnx. Deterministic (seeded).

    /work/venv-tf/bin/python tests/models/make_tf_models.py [--out DIR]

Exporter venv (kept apart from edgec's: tensorflow pins its own protobuf/onnx versions):

    python3 -m venv /work/venv-tf && /work/venv-tf/bin/pip install tensorflow-cpu==2.21.0 tf2onnx==1.17.0

Weights are reproducible; tf2onnx's generated node names (frozen while-loop ids) may differ
between runs. Versions used for the committed files: tensorflow-cpu 2.21.0, keras 3.15.1, tf2onnx 1.17.0 (onnx 1.23.2).
Each Keras model is wrapped in a `tf.function` and converted with `tf2onnx.convert.from_function`
with a dynamic batch dimension (`None`, as a Keras model has), so the tests fix it with
`--input-shape`. Models (random seeded weights; BatchNorm statistics randomized too so folding is
exercised):

- tf_cnn.onnx (opset 13): NHWC MobileNet-style block: Conv2D(same, stride 2) + BatchNorm + ReLU6,
  DepthwiseConv2D + BatchNorm + ReLU6, 1x1 Conv2D, MaxPool2D, GlobalAveragePooling2D, Dense, Softmax.
  tf2onnx keeps the NHWC graph I/O and puts Transposes around the NCHW convolutions.
- tf_rnn.onnx (opset 15): Keras LSTM(return_sequences) -> GRU -> Dense over a time-major sequence.
- tf_same_pad.onnx (opset 16): the input's height and width are dynamic too (a fully convolutional
  Keras model), so tf2onnx cannot compute `padding="same"` pads and emits `auto_pad = "SAME_UPPER"`
  on Conv (stride 2), depthwise Conv, MaxPool and AveragePool; GlobalAveragePooling2D, Dense.
- tf_resize_pad.onnx (opset 17): UpSampling2D(nearest), tf.pad (reflect and constant) feeding a
  valid Conv2D, Resizing(bilinear), a `same` stride-2 Conv2D with even input (asymmetric padding),
  Concatenate on the channel axis.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf2onnx  # noqa: E402
from keras import layers  # noqa: E402


def _randomize_batchnorm(model: keras.Model, rng: np.random.Generator) -> None:
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape).astype("float32"),
                               rng.normal(0, 0.1, beta.shape).astype("float32"),
                               rng.normal(0, 0.1, mean.shape).astype("float32"),
                               rng.uniform(0.5, 1.5, var.shape).astype("float32")])


def cnn() -> keras.Model:
    inp = keras.Input((32, 32, 3), name="image")
    x = layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False)(inp)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU(6.0)(x)
    x = layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU(6.0)(x)
    x = layers.Conv2D(24, 1)(x)
    x = layers.MaxPool2D(2)(x)
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(10, kernel_initializer=keras.initializers.RandomNormal(stddev=3.0))(x)  # peaked softmax
    out = layers.Softmax()(x)
    return keras.Model(inp, out)


def rnn() -> keras.Model:
    inp = keras.Input((6, 5), name="sequence")
    x = layers.LSTM(8, return_sequences=True)(inp)
    x = layers.GRU(8)(x)
    out = layers.Dense(3)(x)
    return keras.Model(inp, out)


def same_pad() -> keras.Model:
    inp = keras.Input((None, None, 3), name="image")
    x = layers.Conv2D(8, 3, strides=2, padding="same")(inp)
    x = layers.DepthwiseConv2D(3, padding="same")(x)
    x = layers.MaxPool2D(3, strides=2, padding="same")(x)
    x = layers.AveragePooling2D(2, padding="same")(x)
    x = layers.Conv2D(8, 1, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(4)(x)
    return keras.Model(inp, out)


def resize_pad() -> keras.Model:
    inp = keras.Input((12, 12, 4), name="image")
    up = layers.UpSampling2D(2)(inp)                                            # 24x24 nearest
    p = layers.Lambda(lambda t: tf.pad(t, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="REFLECT"))(up)
    a = layers.Conv2D(8, 3, padding="valid")(p)                                 # 24x24
    b = layers.Resizing(24, 24, interpolation="bilinear")(inp)                  # 12 -> 24 bilinear
    b = layers.Lambda(lambda t: tf.pad(t, [[0, 0], [2, 0], [0, 2], [0, 0]]))(b)  # TF-style asymmetric pad
    b = layers.Conv2D(8, 3, padding="valid")(b)                                  # 24x24
    x = layers.Concatenate()([a, b])
    out = layers.Conv2D(6, 3, strides=2, padding="same")(x)                     # 12x12, pads (0,1)
    return keras.Model(inp, out)


def export(model: keras.Model, path: Path, opset: int, input_name: str, output_name: str) -> None:
    shape = (None, *model.input_shape[1:])
    spec = (tf.TensorSpec(shape, tf.float32, name=input_name),)

    @tf.function(input_signature=spec)
    def fn(x):
        return {output_name: model(x, training=False)}

    proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=opset, output_path=str(path))
    ops = sorted({n.op_type for n in proto.graph.node})
    print(f"wrote {path} ({path.stat().st_size} bytes): {', '.join(ops)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    out = ap.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    for seed, (name, make, opset, io) in enumerate([
            ("tf_cnn", cnn, 13, ("image", "probs")),
            ("tf_rnn", rnn, 15, ("sequence", "logits")),
            ("tf_resize_pad", resize_pad, 17, ("image", "features")),
            ("tf_same_pad", same_pad, 16, ("image", "logits"))]):
        keras.utils.set_random_seed(seed)
        model = make()
        _randomize_batchnorm(model, np.random.default_rng(seed))
        export(model, out / f"{name}.onnx", opset, *io)


if __name__ == "__main__":
    main()
