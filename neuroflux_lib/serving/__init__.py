"""Serving: model folders (artifacts), the predictor, Grad-CAM, ONNX export, incoming scoring, model cards."""
