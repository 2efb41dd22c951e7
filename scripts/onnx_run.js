#!/usr/bin/env node
// Runs an ONNX model in ONNX Runtime (the onnxruntime-node package) on inputs
// read from raw little-endian files and writes one output the same way; for
// kd's ONNX export tests, and usable by hand:
//   NODE_PATH=build/node/node_modules node scripts/onnx_run.js MODEL OUTPUT OUT.bin \
//       NAME:float32|int64:D0xD1:FILE ...
// Prints ONNX Runtime's version and the output's shape on standard output.
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

async function main() {
  const [model, outName, outFile, ...specs] = process.argv.slice(2);
  if (!model || !outName || !outFile || specs.length === 0)
    throw new Error('usage: onnx_run.js MODEL OUTPUT OUT.bin NAME:TYPE:D0xD1:FILE ...');
  const feeds = {};
  for (const spec of specs) {
    const [name, type, dims, file] = spec.split(':');
    const shape = dims.split('x').map(Number);
    const buf = fs.readFileSync(file);
    const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength).slice();
    let data;
    if (type === 'float32') data = new Float32Array(bytes.buffer);
    else if (type === 'int64') data = new BigInt64Array(bytes.buffer);
    else throw new Error(`unknown type '${type}'`);
    const n = shape.reduce((a, b) => a * b, 1);
    if (data.length !== n) throw new Error(`${file}: ${data.length} values for shape ${dims}`);
    feeds[name] = new ort.Tensor(type, data, shape);
  }
  const session = await ort.InferenceSession.create(model);
  const results = await session.run(feeds);
  const out = results[outName];
  if (!out) throw new Error(`no output '${outName}' (outputs: ${session.outputNames.join(', ')})`);
  const f = out.data;
  fs.writeFileSync(outFile, Buffer.from(f.buffer, f.byteOffset, f.byteLength));
  console.log(`onnxruntime ${ort.env.versions.common} ${outName} ${out.dims.join('x')}`);
}

main().catch((e) => {
  console.error(`onnx_run.js: ${e.message}`);
  process.exit(1);
});
