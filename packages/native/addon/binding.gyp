{
  "targets": [
    {
      "target_name": "sgd_native",
      "sources": ["sgd_native.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "<!(node ../scripts/blas.cjs include)"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-O3", "-std=c++17", "-fno-trapping-math", "-fno-math-errno", "-ffp-contract=off"],
      "libraries": ["<!@(node ../scripts/blas.cjs libs)", "-lpthread"]
    }
  ]
}
