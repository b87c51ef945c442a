"""Stored evidence from one reference run of the validation experiments (generated; do not edit).

Regenerate with `recipecheck validate --write-evidence runtime/experiments`.
"""

ENVIRONMENT = 'torch 2.13.0+cpu, Python 3.11.7, cpu, seed 0'
TOTAL_SECONDS = 9.4

EVIDENCE = {'RC101': {'claim': 'Without zero_grad() the gradient that step() sees is the running sum of every '
                    'past gradient: its norm grows with the step count instead of staying at the '
                    'per-batch scale.',
           'summary': 'grad_norm_growth: 9.64 (no zero_grad) vs 0.925 (zero_grad each step) [pass]',
           'details': 'after 20 SGD steps the step() gradient norm is 9.6x its first value without '
                      'zero_grad (margin >= 5x) vs 0.92x with it (margin <= 2x); runtime monitor: '
                      'buggy run fired RT104, fixed run fired none (expected on the buggy run '
                      'only: RT104)',
           'verdict': 'pass',
           'headline': 'grad_norm_growth',
           'buggy': {'grad_norm_growth': 9.642273539543957,
                     'first_grad_norm': 0.6524096701202959,
                     'last_grad_norm': 6.530850484939969,
                     'steps': 20},
           'fixed': {'grad_norm_growth': 0.9246964950811152,
                     'first_grad_norm': 0.6524096701202959,
                     'last_grad_norm': 0.4272196559900585,
                     'steps': 20},
           'seconds': 1.23},
 'RC102': {'claim': 'zero_grad() between backward() and step() hands step() empty gradients: the '
                    'parameters never move and the loss never changes.',
           'summary': 'param_change: 0 (zero_grad after backward) vs 2.98 (zero_grad before '
                      'backward) [pass]',
           'details': '||theta_T - theta_0|| = 0 with zero_grad between backward and step (must be '
                      'exactly 0) vs 2.98 (margin > 0.1)',
           'verdict': 'pass',
           'headline': 'param_change',
           'buggy': {'param_change': 0.0, 'loss_drop': 0.0, 'final_loss': 1.1043235063552856},
           'fixed': {'param_change': 2.978196620941162,
                     'loss_drop': 0.06644421815872192,
                     'final_loss': 0.7285106182098389},
           'seconds': 0.03},
 'RC105': {'claim': 'Accumulating k micro-batch gradients without dividing the loss by k makes '
                    'each update k times the large-batch update it is meant to equal.',
           'summary': 'update_over_large_batch: 4 (loss not / k) vs 1 (loss / k) [pass]',
           'details': 'k=4: unscaled update = 4.000x the 120-example update (margin: within 5% of '
                      '4) vs 1.0000x scaled (within 1% of 1)',
           'verdict': 'pass',
           'headline': 'update_over_large_batch',
           'buggy': {'update_norm': 0.6839714050292969,
                     'update_over_large_batch': 4.0000003485797775,
                     'k': 4},
           'fixed': {'update_norm': 0.17099285125732422,
                     'update_over_large_batch': 1.0000000871449444,
                     'k': 4},
           'seconds': 0.01},
 'RC201': {'claim': 'StepLR stepped once per batch instead of once per epoch decays len(loader) '
                    'times too fast: the LR collapses toward zero within a few epochs and training '
                    'stalls at a lower accuracy.',
           'summary': 'lr_after_epoch_1: 0.125 (step() per batch) vs 0.5 (step() per epoch) [pass]',
           'details': 'StepLR(step_size=5, gamma=0.5), 10 batches/epoch: LR after epoch 1 = 0.125 '
                      'per batch vs 0.5 intended (margin: >= 3x lower); final LR 4.55e-13 vs '
                      '3.12e-02; accuracy 0.567 vs 0.967 (margin >= 0.05); runtime monitor: buggy '
                      'run fired RT105, fixed run fired none (expected on the buggy run only: '
                      'RT105)',
           'verdict': 'pass',
           'headline': 'lr_after_epoch_1',
           'buggy': {'lr_after_epoch_1': 0.125,
                     'final_lr': 4.547473508864641e-13,
                     'final_loss': 0.6911106109619141,
                     'final_acc': 0.5666666626930237},
           'fixed': {'lr_after_epoch_1': 0.5,
                     'final_lr': 0.03125,
                     'final_loss': 0.1182854101061821,
                     'final_acc': 0.9666666388511658},
           'seconds': 0.23},
 'RC202': {'claim': 'OneCycleLR stepped once per epoch instead of once per batch never reaches its '
                    'peak LR and never anneals: the run ends at a low warm-up LR.',
           'summary': 'peak_lr_over_max: 0.265 (step() per epoch) vs 1 (step() per batch) [pass]',
           'details': 'OneCycleLR(max_lr=0.5) over 20 epochs x 10 batches: peak LR = 0.265 x '
                      'max_lr per epoch (margin <= 0.5) vs 1.000 (>= 0.99); final LR 2.65e-01 vs '
                      '4.00e-06 x max_lr (margin >= 100x); accuracy 0.897 vs 0.950',
           'verdict': 'pass',
           'headline': 'peak_lr_over_max',
           'buggy': {'peak_lr_over_max': 0.2653979641025237,
                     'final_lr_over_max': 0.2653979641025237,
                     'final_loss': 0.30556079745292664,
                     'final_acc': 0.8966666460037231},
           'fixed': {'peak_lr_over_max': 1.0,
                     'final_lr_over_max': 4e-06,
                     'final_loss': 0.14017830789089203,
                     'final_acc': 0.949999988079071},
           'seconds': 0.22},
 'RC301': {'claim': 'Zero-initialized weights give every hidden unit the same value and a zero '
                    'gradient: the hidden layers never learn (activation rank 0) and accuracy '
                    'stays at chance.',
           'summary': 'final_acc: 0.333 (zeros_ init) vs 0.94 (default init) [pass]',
           'details': '64-unit ReLU MLP on 3-class spiral, 200 SGD steps: hidden activation rank 0 '
                      '(margin <= 1) vs 37 (>= 16); accuracy 0.333 (<= chance+0.1) vs 0.940 (>= '
                      '0.85); runtime monitor: buggy run fired RT107, RT109, RT112, fixed run '
                      'fired none (expected on the buggy run only: RT109)',
           'verdict': 'pass',
           'headline': 'final_acc',
           'buggy': {'hidden_rank': 0,
                     'max_row_spread': 0.0,
                     'final_acc': 0.3333333432674408,
                     'final_loss': 1.1086220741271973},
           'fixed': {'hidden_rank': 37,
                     'max_row_spread': 7.438629150390625,
                     'final_acc': 0.9399999976158142,
                     'final_loss': 0.13269001245498657},
           'seconds': 0.22},
 'RC302': {'claim': 'A constant weight init never breaks symmetry: every unit of a layer keeps '
                    'identical weights through training (rank-1 hidden activations) and the '
                    'network fits like a one-unit model.',
           'summary': 'max_row_spread: 0 (constant_(w, 0.1)) vs 7.44 (default init) [pass]',
           'details': 'after 200 SGD steps the rows of the hidden weight matrix differ by at most '
                      '0 (margin <= 1e-6) vs 7.44; hidden rank 1 vs 37; accuracy 0.477 vs 0.940 '
                      '(margin >= 0.2); runtime monitor: buggy run fired RT109, RT112, fixed run '
                      'fired none (expected on the buggy run only: RT109)',
           'verdict': 'pass',
           'headline': 'max_row_spread',
           'buggy': {'hidden_rank': 1,
                     'max_row_spread': 0.0,
                     'final_acc': 0.476666659116745,
                     'final_loss': 0.9755099415779114},
           'fixed': {'hidden_rank': 37,
                     'max_row_spread': 7.438629150390625,
                     'final_acc': 0.9399999976158142,
                     'final_loss': 0.13269001245498657},
           'seconds': 0.22},
 'RC303': {'claim': 'Weights drawn from N(0, 1) ignore fan-in: in a deep ReLU MLP each layer '
                    'multiplies the activation scale by about sqrt(fan_in/2), so it explodes with '
                    'depth; fan-in scaled (Kaiming) init keeps it constant.',
           'summary': 'last_over_first_std: 2.15e+09 (normal_(w, 0, 1)) vs 0.709 (N(0, 2/fan_in)) '
                      '[pass]',
           'details': '10 ReLU layers of width 256: activation std grows 2.15e+09x from layer 1 to '
                      '10 with N(0,1) (margin >= 1e6; about sqrt(256/2)=11.3x per layer) vs 0.71x '
                      'with fan-in scaling (within [0.2, 5]); initial loss 3.83e+10 vs 1.1',
           'verdict': 'pass',
           'headline': 'last_over_first_std',
           'buggy': {'first_std': 14.464722633361816,
                     'last_std': 31131600896.0,
                     'last_over_first_std': 2152243197.819587,
                     'log10_growth_per_layer': 1.0369879271001299,
                     'initial_loss': 38283501568.0},
           'fixed': {'first_std': 1.278512954711914,
                     'last_std': 0.9060486555099487,
                     'last_over_first_std': 0.7086738168516311,
                     'log10_growth_per_layer': -0.016617068075949717,
                     'initial_loss': 1.1023838520050049},
           'seconds': 0.04},
 'RC401': {'claim': 'Training on class-sorted data without shuffling makes every batch one class: '
                    'the model chases the last classes it saw and ends each epoch far less '
                    'accurate than with shuffle=True.',
           'summary': 'final_acc: 0.21 (shuffle=False, sorted) vs 0.982 (shuffle=True) [pass]',
           'details': '5 Gaussian blobs sorted by class, 10 epochs: accuracy 0.210 unshuffled vs '
                      '0.982 shuffled (margin >= 0.2); 0% of predictions are the last class seen '
                      '(chance 20%); runtime monitor: buggy run fired RT101, RT110, RT112, RT113, '
                      'fixed run fired RT101 (expected on the buggy run only: RT110)',
           'verdict': 'pass',
           'headline': 'final_acc',
           'buggy': {'final_acc': 0.20999999344348907,
                     'mean_epoch_acc': 0.35219999849796296,
                     'predicted_last_class': 0.0},
           'fixed': {'final_acc': 0.9819999933242798,
                     'mean_epoch_acc': 0.9686000049114227,
                     'predicted_last_class': 0.20999999344348907},
           'seconds': 0.25},
 'RC402': {'claim': 'Statistics fitted on the whole data set before the split leak the validation '
                    'labels into the preprocessing: on pure-noise data, feature selection + '
                    'normalization fitted before a k-fold split report far-above-chance accuracy; '
                    'fitted inside each training fold, chance.',
           'summary': 'cv_accuracy: 0.938 (fit before split) vs 0.478 (fit on train fold) [pass]',
           'details': '60 examples x 2000 noise features, labels independent, top-20 correlation '
                      'selection + z-scoring, 5-fold CV over 10 draws: 0.938 fitted before the '
                      'split vs 0.478 inside each fold (truth 0.5; margin >= 0.2 gap, fixed within '
                      '0.1 of chance)',
           'verdict': 'pass',
           'headline': 'cv_accuracy',
           'buggy': {'cv_accuracy': 0.9383333384990691,
                     'min': 0.8833333373069763,
                     'max': 0.9666666746139526,
                     'chance': 0.5},
           'fixed': {'cv_accuracy': 0.47833333075046536,
                     'min': 0.3833333313465118,
                     'max': 0.6333333253860474,
                     'chance': 0.5},
           'seconds': 0.07},
 'RC501': {'claim': "Dropout feeding BatchNorm makes BN's running variance (collected with dropout "
                    'on) disagree with the variance it sees at eval time (dropout off): a '
                    'train/eval variance shift.',
           'summary': 'running_var_over_eval_var: 3.39 (Dropout -> BN) vs 0.993 (BN, Dropout after '
                      'last BN) [pass]',
           'details': "spiral, 2x128 MLP, p=0.5: last BN's running_var / eval-time input variance "
                      '= 3.39 with Dropout -> BN (margin >= 1.3) vs 0.99 (within 0.15 of 1); eval '
                      'accuracy 0.977 vs 0.973',
           'verdict': 'pass',
           'headline': 'running_var_over_eval_var',
           'buggy': {'running_var_over_eval_var': 3.3851099014282227,
                     'eval_acc': 0.9766666889190674},
           'fixed': {'running_var_over_eval_var': 0.9933298826217651,
                     'eval_acc': 0.9733333587646484},
           'seconds': 0.96},
 'RC506': {'claim': 'softmax before CrossEntropyLoss (double softmax) squashes the logits into [0, '
                    '1]: the gradients shrink several-fold and the model learns far more slowly at '
                    'the same LR.',
           'summary': 'init_grad_norm: 0.059 (CE(softmax(z))) vs 0.299 (CE(z)) [pass]',
           'details': '5-class spiral, 200 SGD steps: gradient norm at init 0.059 vs 0.299 (5.1x '
                      'smaller; margin >= 3x); accuracy 0.453 vs 0.657 (margin >= 0.1)',
           'verdict': 'pass',
           'headline': 'init_grad_norm',
           'buggy': {'init_grad_norm': 0.059034962207078934,
                     'mean_grad_norm': 0.12909169144302518,
                     'final_acc': 0.4533333480358124,
                     'final_ce_on_logits': 1.4848268032073975},
           'fixed': {'init_grad_norm': 0.2989986836910248,
                     'mean_grad_norm': 0.5169862797217342,
                     'final_acc': 0.6566666960716248,
                     'final_ce_on_logits': 0.7672070860862732},
           'seconds': 0.18},
 'RC507': {'claim': 'F.dropout(x, p) without training=self.training stays on after model.eval(): '
                    'predictions at evaluation are random: repeated evaluations of the same inputs '
                    'disagree.',
           'summary': 'eval_output_std: 1.22 (F.dropout(h, p)) vs 0 (training=self.training) '
                      '[pass]',
           'details': '10 eval() passes over the same 300 inputs: mean output std 1.22 (margin >= '
                      '0.05) vs 0 (must be 0); accuracy 0.857-0.913 vs 0.927 every time',
           'verdict': 'pass',
           'headline': 'eval_output_std',
           'buggy': {'eval_output_std': 1.219178318977356,
                     'eval_acc_min': 0.8566666841506958,
                     'eval_acc_max': 0.9133333563804626,
                     'eval_acc_mean': 0.8903333306312561},
           'fixed': {'eval_output_std': 0.0,
                     'eval_acc_min': 0.9266666769981384,
                     'eval_acc_max': 0.9266666769981384,
                     'eval_acc_mean': 0.9266666769981384},
           'seconds': 0.5},
 'RC601': {'claim': "Adam's weight_decay is L2 added to the gradient, so it is divided by sqrt(v) "
                    'like the gradient: weights with a large gradient history barely decay, while '
                    "AdamW's decoupled decay shrinks every weight by lr*wd per step.",
           'summary': 'weight_retained: 0.957 (Adam(weight_decay)) vs 0.611 (AdamW(weight_decay)) '
                      '[pass]',
           'details': 'lr=0.01, wd=0.1, 500 steps, weights start at 1 with zero-mean gradient '
                      'noise: with gradient scale 10 Adam+L2 keeps 0.957 of the weight vs AdamW '
                      '0.611 (closed form (1-lr*wd)^T = 0.606; margins: AdamW within 0.05, Adam >= '
                      '0.2 above); with gradient scale 0.01 Adam+L2 keeps 0.000: its decay depends '
                      "on the gradient history, AdamW's does not (0.611)",
           'verdict': 'pass',
           'headline': 'weight_retained',
           'buggy': {'weight_retained': 0.9568194150924683,
                     'retained_grad_scale_1': 0.6100477576255798,
                     'retained_grad_scale_0.01': 0.00031841546297073364},
           'fixed': {'weight_retained': 0.6106222867965698,
                     'retained_grad_scale_1': 0.6106222867965698,
                     'retained_grad_scale_0.01': 0.610622227191925,
                     'expected_decoupled': 0.6063789448611847},
           'seconds': 0.41},
 'RC605': {'claim': 'An RNN trained without gradient clipping meets exploding gradients: a few '
                    'huge gradients throw the loss up in spikes until the run diverges, while the '
                    'same recipe with the gradient norm clipped trains stably.',
           'summary': 'max_loss: 1.00e+06 (no clipping) vs 0.278 (clip_grad_norm_(1.0)) [pass]',
           'details': 'Elman RNN (tanh, 32 units, recurrent gain 1.5) on the adding problem '
                      '(length 20), SGD lr=0.1, 64 steps: 6 loss spikes (>3x the running median) '
                      'vs 0 clipped (margin >= 1 more); max loss after warm-up 1e+06 vs 0.278 '
                      '(margin >= 10x; 1e+06 = non-finite); unclipped loss non-finite from step 33 '
                      '(0 = never); final loss 1e+06 vs 0.202',
           'verdict': 'pass',
           'headline': 'max_loss',
           'buggy': {'loss_spikes': 6,
                     'max_loss': 1000000.0,
                     'max_grad_norm': 1000000.0,
                     'diverged_at_step': 33,
                     'final_loss': 1000000.0},
           'fixed': {'loss_spikes': 0,
                     'max_loss': 0.2776819169521332,
                     'max_grad_norm': 13.525864302400535,
                     'diverged_at_step': 0,
                     'final_loss': 0.2018989473581314},
           'seconds': 0.24},
 'RC701': {'claim': 'Evaluating without model.eval() leaves Dropout sampling and BatchNorm using '
                    'batch statistics (and updating its running ones): the validation metric is '
                    'lower, changes from one evaluation to the next, and evaluation alters the '
                    'model.',
           'summary': 'val_acc_range: 0.0667 (no model.eval()) vs 0 (model.eval()) [pass]',
           'details': 'BN+Dropout(0.3) MLP on spiral, 10 evaluations in batches of 16: validation '
                      'accuracy 0.756-0.822 in train mode vs 0.963 every time with eval() '
                      '(margins: range > 0.005 vs exactly 0, mean >= 0.01 lower); BN running stats '
                      'moved by 2.63 during train-mode evaluation vs 0; runtime monitor: buggy run '
                      'fired RT111, fixed run fired none (expected on the buggy run only: RT111)',
           'verdict': 'pass',
           'headline': 'val_acc_range',
           'buggy': {'val_acc_mean': 0.7866666666666667,
                     'val_acc_range': 0.06666666666666665,
                     'val_acc_min': 0.7555555555555555,
                     'val_acc_max': 0.8222222222222222,
                     'state_change_by_eval': 2.6262779235839844},
           'fixed': {'val_acc_mean': 0.962962962962963,
                     'val_acc_range': 0.0,
                     'val_acc_min': 0.9629629629629629,
                     'val_acc_max': 0.9629629629629629,
                     'state_change_by_eval': 0.0},
           'seconds': 0.56},
 'sanity:initial-loss': {'claim': 'At initialization with small weights a C-class softmax '
                                  'classifier predicts uniformly: its first loss is ln(C); weights '
                                  'drawn from N(0, 1) start far above it.',
                         'summary': 'initial_loss: 70.3 (N(0,1) init) vs 2.36 (default init) '
                                    '[pass]',
                         'details': '10 classes: first loss 2.356 with the default init vs ln(10) '
                                    '= 2.303 (margin: within 5%); 70.3 with N(0,1) weights '
                                    '(margin: >= 50% off); runtime monitor: buggy run fired RT101, '
                                    'fixed run fired none (expected on the buggy run only: RT101)',
                         'verdict': 'pass',
                         'headline': 'initial_loss',
                         'buggy': {'initial_loss': 70.34822845458984,
                                   'ln_C': 2.302585092994046,
                                   'rel_error': 29.551847429497688},
                         'fixed': {'initial_loss': 2.3555753231048584,
                                   'ln_C': 2.302585092994046,
                                   'rel_error': 0.023013364531909407},
                         'seconds': 0.01},
 'sanity:overfit-tiny': {'claim': 'With regularization off, a correct model and training loop '
                                  'drive the loss on a few examples to near zero; heavy '
                                  'regularization (or a bug) keeps it from overfitting.',
                         'summary': 'final_loss: 2.1 (L2 lambda=0.1) vs 5.14e-06 (no '
                                    'regularization) [pass]',
                         'details': 'small CNN on 20 digits (8x8), 200 full-batch Adam steps: loss '
                                    '5.14e-06 without regularization (margin <= 0.01, accuracy '
                                    '1.00) vs 2.1 with an L2 penalty of 0.1 (>= 0.1)',
                         'verdict': 'pass',
                         'headline': 'final_loss',
                         'buggy': {'final_loss': 2.096111297607422,
                                   'final_acc': 0.20000000298023224,
                                   'steps': 200},
                         'fixed': {'final_loss': 5.1438323680486064e-06,
                                   'final_acc': 1.0,
                                   'steps': 200},
                         'seconds': 1.84},
 'sanity:regularization-loss': {'claim': 'Adding an L2 penalty lambda*sum(W^2) raises the initial '
                                         'loss, monotonically in lambda (a penalty that does not '
                                         'raise it is not wired into the loss).',
                                'summary': 'initial_loss: 1.1 (lambda=0) vs 23.7 (lambda=1) [pass]',
                                'details': 'initial loss by lambda 0: 1.104, 0.001: 1.127, 0.01: '
                                           '1.331, 0.1: 3.369, 1: 23.749 (margin: strictly '
                                           'increasing, lambda=1 at least 1.0 above lambda=0)',
                                'verdict': 'pass',
                                'headline': 'initial_loss',
                                'buggy': {'initial_loss': 1.1043235063552856, 'lambda': 0.0},
                                'fixed': {'initial_loss': 23.748676300048828,
                                          'lambda': 1.0,
                                          'initial_loss_lambda_0.001': 1.1269679069519043,
                                          'initial_loss_lambda_0.01': 1.330767035484314,
                                          'initial_loss_lambda_0.1': 3.3687586784362793},
                                'seconds': 0.0},
 'sanity:update-ratio': {'claim': 'The update/weight ratio ||dW||/||W|| separates learning rates: '
                                  'at the best LR of a sweep it lies in the healthy band [1e-4, '
                                  '1e-1] (heuristic: about 1e-3); a far too low LR gives a ratio '
                                  'below it, a far too high one kills or blows up training.',
                         'summary': 'update_ratio: 1.09e-05 (lr=1e-4 / lr=10) vs 0.0416 (best lr '
                                    'of sweep) [pass]',
                         'details': 'median update/weight ratio by SGD lr: 0.0001: 1.09e-05 (loss '
                                    '1.102), 0.01: 9.59e-04 (loss 0.942), 1: 4.16e-02 (loss '
                                    '0.340), 10: 0.00e+00 (loss 1.739); best lr 1 (margins: best '
                                    'inside [1e-4, 1e-1], lr 1e-4 and 10 outside it and >= 0.3 '
                                    'worse in loss)',
                         'verdict': 'pass',
                         'headline': 'update_ratio',
                         'buggy': {'update_ratio': 1.0888087529126943e-05,
                                   'final_loss': 1.101905345916748,
                                   'update_ratio_lr_10': 0.0,
                                   'final_loss_lr_10': 1.7391434907913208},
                         'fixed': {'update_ratio': 0.041575041310882944,
                                   'final_loss': 0.3401501476764679,
                                   'lr': 1.0,
                                   'update_ratio_lr_0.0001': 1.0888087529126943e-05,
                                   'update_ratio_lr_0.01': 0.0009587836958455049,
                                   'update_ratio_lr_1': 0.041575041310882944,
                                   'update_ratio_lr_10': 0.0},
                         'seconds': 0.25},
 'sanity:lr-decay-forms': {'claim': 'On the same noisy mini-batch SGD problem, step decay, '
                                    'exponential decay a0*exp(-kt) and 1/t decay a0/(1+kt) all end '
                                    'at a lower loss than a constant LR.',
                           'summary': 'final_loss: 0.172 (constant lr) vs 0.0689 (best decay) '
                                      '[pass]',
                           'details': 'spiral, SGD lr0=0.3 momentum 0.9, batch 10, 30 epochs: '
                                      'final loss constant 0.172, step 0.069, exponential 0.072, '
                                      '1/t 0.118 (margin: every decay <= 0.9x constant)',
                           'verdict': 'pass',
                           'headline': 'final_loss',
                           'buggy': {'final_loss': 0.1715109646320343,
                                     'final_acc': 0.9133333563804626,
                                     'final_lr': 0.3},
                           'fixed': {'final_loss': 0.06885237246751785,
                                     'schedule': 'step',
                                     'final_loss_step': 0.06885237246751785,
                                     'final_acc_step': 0.9800000190734863,
                                     'final_loss_exponential': 0.0717993676662445,
                                     'final_acc_exponential': 0.9833333492279053,
                                     'final_loss_1/t': 0.11776900291442871,
                                     'final_acc_1/t': 0.9599999785423279},
                           'seconds': 1.83}}
