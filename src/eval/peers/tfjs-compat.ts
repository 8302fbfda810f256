// Running face-api's dist build on the project's own tfjs-core (wasm backend), for `evaluate --peer faceapi`.
//
// face-api.node-wasm.js requires the full `@tensorflow/tfjs` bundle, which is not a dependency here; tfjs-core
// has every op it uses. Two gaps are closed, both only inside the evaluation tool:
// - the require of '@tensorflow/tfjs' is answered with tfjs-core while face-api loads (and only then);
// - tfjs-core's node build does not install the chained tensor methods (`t.as4D()`, `t.sub(x)`, …) that the
//   full bundle adds; they are added here, each forwarding to the tfjs-core op of the same name.
import Module, { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs-core';

type AnyFn = (...args: unknown[]) => unknown;

/** The ops face-api calls as tensor methods (tfjs-core dist/public/chained_ops, in camelCase). */
const CHAINED = [
  'abs', 'add', 'all', 'any', 'argMax', 'argMin', 'avgPool', 'batchNorm', 'cast', 'clipByValue', 'concat', 'conv2d',
  'depthwiseConv2d', 'div', 'divNoNan', 'dot', 'elu', 'equal', 'exp', 'expandDims', 'flatten', 'floor', 'gather',
  'greater', 'greaterEqual', 'less', 'lessEqual', 'log', 'logSoftmax', 'matMul', 'max', 'maxPool', 'maximum', 'mean',
  'min', 'minimum', 'mul', 'neg', 'pad', 'pow', 'prelu', 'relu', 'relu6', 'reshape', 'reverse', 'round', 'rsqrt',
  'separableConv2d', 'sigmoid', 'slice', 'softmax', 'split', 'sqrt', 'square', 'squeeze', 'stack', 'sub', 'sum',
  'tanh', 'tile', 'transpose', 'unstack',
] as const;

let installed = false;

export function installChainedOps(): void {
  if (installed) return;
  installed = true;
  const proto = tf.Tensor.prototype as unknown as Record<string, AnyFn>;
  const ops = tf as unknown as Record<string, AnyFn>;
  const define = (name: string, fn: AnyFn): void => {
    if (typeof proto[name] !== 'function') proto[name] = fn;
  };
  for (const name of CHAINED) {
    const op = ops[name];
    if (typeof op === 'function') define(name, function (this: tf.Tensor, ...args: unknown[]) { return op(this, ...args); });
  }
  define('as1D', function (this: tf.Tensor) { return tf.reshape(this, [this.size]); });
  define('as2D', function (this: tf.Tensor, ...s: unknown[]) { return tf.reshape(this, s as number[]); });
  define('as3D', function (this: tf.Tensor, ...s: unknown[]) { return tf.reshape(this, s as number[]); });
  define('as4D', function (this: tf.Tensor, ...s: unknown[]) { return tf.reshape(this, s as number[]); });
  define('asScalar', function (this: tf.Tensor) { return tf.reshape(this, []); });
  define('asType', function (this: tf.Tensor, dtype: unknown) { return tf.cast(this, dtype as tf.DataType); });
  define('toFloat', function (this: tf.Tensor) { return tf.cast(this, 'float32'); });
  define('toInt', function (this: tf.Tensor) { return tf.cast(this, 'int32'); });
  define('resizeBilinear', function (this: tf.Tensor, size: unknown, align?: unknown) {
    return tf.image.resizeBilinear(this as tf.Tensor3D, size as [number, number], align as boolean | undefined);
  });
}

/** `require(id)` with '@tensorflow/tfjs' answered by tfjs-core while that one module loads. */
export function requireWithTfjsCore<T>(id: string): T {
  const require = createRequire(import.meta.url);
  const core = require.resolve('@tensorflow/tfjs-core');
  const M = Module as unknown as { _resolveFilename: AnyFn };
  const original = M._resolveFilename;
  M._resolveFilename = function (this: unknown, request: unknown, ...rest: unknown[]) {
    return request === '@tensorflow/tfjs' ? core : original.call(this, request, ...rest);
  };
  try {
    return require(id) as T;
  } finally {
    M._resolveFilename = original;
  }
}
