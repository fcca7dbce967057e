"""The shipped demo model: its synthetic task, training and evaluation."""
