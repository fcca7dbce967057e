#!/bin/bash
# Calibrated GGUF against stock llama.cpp on the demo model, one run (benchmarks/RESULTS.md, issue 35):
#   LLAMA_BIN=PATH/llama.cpp/build/bin devtools/calibration_vs_stock.sh   (--no-repack: AMX CPUs crash without it)
set -e
cd "$(dirname "$0")/.."
P=${LLAMA_BIN:?set LLAMA_BIN to stock llama.cpp build/bin (../shared/NOTES.md)}
Q="env LD_LIBRARY_PATH=$P $P/llama-quantize"
R=${OUT:-out/r35}
.venv/bin/slmkit quantize --format gguf --quant f16 --out $R/f16 --threads 2 > /dev/null 2>&1
F16=$R/f16/slmkit-demo-F16.gguf
[ -f $R/stock-imatrix.gguf ] || /usr/bin/time -f "stock llama-imatrix %e s" env LD_LIBRARY_PATH=$P $P/llama-imatrix -m $F16 -f toolkit/demo/data/calibration.txt -c 128 -t 2 -o $R/stock-imatrix.gguf --no-repack > $R/imatrix.log 2>&1
for T in Q4_K_M Q4_0 Q8_0; do
  $Q $F16 $R/stock-rtn-$T.gguf $T 2 > /dev/null 2>&1
  $Q --imatrix $R/stock-imatrix.gguf $F16 $R/stock-imatrix-$T.gguf $T 2 > /dev/null 2>&1
done
$Q --imatrix $R/stock-imatrix.gguf --token-embedding-type q4_k --output-tensor-type q4_k $F16 $R/stock-imatrix-IQ4_XS-embq4k.gguf IQ4_XS 2 > /dev/null 2>&1
$Q --imatrix $R/stock-imatrix.gguf --token-embedding-type q5_k --output-tensor-type q5_k $F16 $R/stock-imatrix-IQ4_XS-embq5k.gguf IQ4_XS 2 > /dev/null 2>&1
/usr/bin/time -f "slmkit imatrix %e s" .venv/bin/slmkit quantize --format gguf --quant q4_k_m,q4_0,q8_0 --calibration demo --calibration-method imatrix --imatrix-out $R/slmkit-imatrix.gguf --out $R/slmkit-imatrix --threads 2 2>&1 | grep -E "importance|wrote slmkit|slmkit imatrix"
/usr/bin/time -f "slmkit gptq %e s" .venv/bin/slmkit quantize --format gguf --quant q4_k_m,q4_0,q8_0 --calibration demo --out $R/slmkit-gptq --threads 2 2>&1 | grep -E "importance|wrote slmkit|error comp|slmkit gptq"
# the smaller uniform types, calibrated (what --max-kl's mixes are compared with)
.venv/bin/slmkit quantize --format gguf --quant q4_k_s,iq4_xs,q3_k_m,q3_k_s --calibration demo --out $R/slmkit-uniform --threads 2 2>&1 | grep -E "wrote slmkit"
# ONNX: round-to-nearest against calibrated (error compensation on onnxruntime's MatMulNBits scales)
.venv/bin/slmkit quantize --format onnx --quant int8,int8dyn,int4 --out $R/onnx-rtn --threads 2 2>&1 | grep -E "wrote slmkit"
/usr/bin/time -f "slmkit onnx gptq %e s" .venv/bin/slmkit quantize --format onnx --quant int8,int4 --calibration demo --out $R/onnx-gptq --threads 2 2>&1 | grep -E "importance|wrote slmkit|slmkit onnx"
.venv/bin/slmkit quantize --format gguf --quant q4_0 --embedding-type q4_k --calibration demo --out $R/slmkit-frontier --threads 2 2>&1 | grep -E "wrote slmkit"
# interop: stock llama-quantize takes slmkit's matrix
$Q --imatrix $R/slmkit-imatrix.gguf $F16 $R/stock-with-slmkit-imatrix-Q4_K_M.gguf Q4_K_M 2 > /dev/null 2>&1 && echo "stock llama-quantize accepted slmkit's imatrix"
.venv/bin/python -m devtools.quant_kl $R/stock-rtn-*.gguf $R/stock-imatrix-*.gguf $R/stock-with-slmkit-imatrix-Q4_K_M.gguf $R/slmkit-imatrix/*.gguf $R/slmkit-gptq/*.gguf $R/slmkit-frontier/*.gguf $R/slmkit-uniform/*.gguf $R/onnx-rtn/*.onnx $R/onnx-gptq/*.onnx --json $R/kl.json 2>&1 | grep "bits/weight"
