"""Training: the loop behind ``seq2seq train``, its loss, schedules, devices and checkpoints.

from seq2seq.training.trainer import train
result = train(load_config("configs/demo.yaml"), "runs/demo")
"""
