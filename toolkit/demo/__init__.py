"""Folder ``toolkit/demo/``, imported as ``slmkit.demo``: the shipped demo model (``model/``), its
synthetic task data, training and evaluation."""
