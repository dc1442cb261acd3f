"""madvae: train, attack and compare generative purification defenses (Defense-VAE, MAD-VAE).

Where each step lives (the command that runs it in brackets):

  registries     madvae.registry (architectures, loss variants), madvae.attacks (ATTACKS: every attack with its
                 kind, presets and quick cut; the one parameter resolver), madvae.evaluate (MODES), madvae.data
                 (SOURCES)
  data           data.py: clean digits; store.py: the HDF5 set format            [madvae gen --attack none]
  attacks        attacks/: whitebox.py, adaptive.py, blackbox.py, overpowered.py  [madvae gen --attack NAME]
                 each called as fn(target, x, y, **params) -> x_adv, target a defense.Target
  models         models.py, checkpoint.py (the checkpoint format)
  training       train_classifier.py                                              [madvae classifier]
                 train.py, resume.py, losses.py, stream.py                        [madvae train]
  the defense    defense.py: Target (classifier behind a purifier), mean or sampled decoding
  evaluation     evaluate/: one module per mode; results.py, outcomes.py          [madvae attack --mode MODE]
  tables         report.py (built), table_files.py (written), intervals.py, security.py (eps curves),
                 table_notes.py, paper.py, paper_claims.py, selection.py          [madvae report]
  figures        figures.py, embed.py                                             [madvae report, madvae embed]
  checks         schemas.py (every format's schema), inspect.py, verify.py        [madvae inspect]
The command line itself is cli.py (with cli_figures.py and cli_options.py): thin verbs over these modules.
"""

__version__ = "0.1.0"
