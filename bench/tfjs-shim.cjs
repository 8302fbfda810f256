// Stands in for the umbrella '@tensorflow/tfjs' package when bench/face-api.ts loads face-api's Node wasm build:
// tfjs-core (with the chained tensor methods face-api calls) and the converter, nothing that needs tfjs-node.
const core = require('@tensorflow/tfjs-core');
require('@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops');
module.exports = Object.assign({}, core, require('@tensorflow/tfjs-converter'));
