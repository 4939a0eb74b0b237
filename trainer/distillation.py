"""Online knowledge distillation: saved classifiers, averaged, give every training batch its targets.

    python -m trainer.train --recipe NAME --teacher-models saved_models/A saved_models/B

Hinton et al. 2015's soft targets, computed inside each training step on the very batch the student
sees (`OnlineDistiller`): each epoch's fresh crops, flips and cutouts get fresh targets, Beyer et
al. 2022's "function matching". A teacher computed once and stored would see other views than
the student trains on, which a dense student learned to memorise. The cost: the members' forward
passes on every step.
"""

from __future__ import annotations

import keras
from keras import ops

from trainer.recipes import check_teachers


def mix_targets(teacher, one_hot, weight: float, temperature: float = 1.0):
    """weight * teacher(T) + (1 - weight) * one-hot, on tensors; teacher(T) = softmax(log(p) / T),
    Hinton's temperature (T > 1 spreads the mass the teacher gives to the wrong classes)."""
    tempered = ops.softmax(ops.log(ops.clip(teacher, 1e-8, 1.0)) / temperature, axis=-1)
    return weight * tempered + (1.0 - weight) * one_hot


def check_settings(weight: float, temperature: float) -> None:
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"distillation weight must be in [0, 1], got {weight}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")


def ensemble_teacher(model_dirs) -> keras.Model:
    """The saved classifiers' average softmax output as one frozen model."""
    from trainer.models import INPUT_SHAPE, load_classifier

    members = [load_classifier(d) for d in check_teachers(model_dirs)]
    for member in members:
        member.trainable = False
    inputs = keras.Input(INPUT_SHAPE)
    outputs = [member(inputs, training=False) for member in members]
    # float32 whatever the training precision: the members are float32 as saved, so is their average.
    average = outputs[0] if len(outputs) == 1 else keras.layers.Average(dtype="float32")(outputs)
    return keras.Model(inputs, average, name="teacher")


class OnlineDistiller(keras.Model):
    """Trains `student` towards the teacher's output on each augmented batch, mixed with the labels.

    Only the student's weights train; `student` is what to save. The compiled loss (and its label
    smoothing) applies to the mixed target; the compiled metrics still score the true labels.
    """

    def __init__(self, student: keras.Model, teacher: keras.Model, weight: float, temperature: float = 1.0,
                 **kwargs):
        super().__init__(name=f"{student.name}_distiller", **kwargs)
        check_settings(weight, temperature)
        self.student, self.teacher = student, teacher
        self.teacher.trainable = False
        self.weight, self.temperature = float(weight), float(temperature)
        self.built = True  # both parts are built models; BackupAndRestore needs a built model before fit

    def call(self, x, training=False):
        return self.student(x, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        teacher = ops.stop_gradient(ops.cast(self.teacher(x, training=False), "float32"))
        target = mix_targets(teacher, ops.cast(y, "float32"), self.weight, self.temperature)
        return super().compute_loss(x, target, y_pred, sample_weight, training)
