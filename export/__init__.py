"""The factory: HeartBEiT in PyTorch, datasets, training, ONNX export, INT8 quantization, bundles.

Imports torch and onnx; the appliance (``edge_ecg``) never imports this package.
Checkpoint convention shared with training (``export.models.heartbeit.save_checkpoint``'s
``extra``): ``render`` (a RenderSpec dict), ``labels`` (names or {name, threshold, priority}),
``window_s``, ``hop_s``, ``name``, ``metrics``, ``data`` - ``edge-ecg export bundle`` reads them.
"""
